"""docs/asyncapi.yaml is generated from the code; CI fails when a topic or a schema changed without regenerating."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import BaseModel, create_model

from shared.service import Service
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import Topic
from tests.support.identity import local_identity

_spec = importlib.util.spec_from_file_location("aimass_asyncapi", PROJECT_ROOT / "deploy" / "asyncapi.py")
assert _spec is not None and _spec.loader is not None
asyncapi = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(asyncapi)


def generated(tmp_path: Path) -> dict[str, Any]:
    return asyncapi.project_document(asyncapi.build_services(asyncapi.reference_settings(tmp_path)))


def test_committed_document_matches_the_code() -> None:
    committed = asyncapi.OUTPUT.read_text()
    assert committed == asyncapi.generate(), (
        "docs/asyncapi.yaml is stale: run `.venv/bin/python deploy/asyncapi.py` and commit it"
    )


def test_every_topic_every_reference_and_the_cloudevents_headers(tmp_path: Path) -> None:
    document = generated(tmp_path)

    def resolve(reference: str) -> object:
        node: Any = document
        for part in reference.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def references(node: object) -> list[str]:
        if isinstance(node, dict):
            return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in references(v)]
        return [r for v in node for r in references(v)] if isinstance(node, list) else []

    for reference in references(document):
        resolve(reference)  # a KeyError names the dangling reference
    assert {c["address"] for c in document["channels"].values()} >= {
        f"aimass.{t.value}" for t in Topic if t is not Topic.AUDIT
    }
    prediction = document["components"]["messages"]["org.aimass.prediction.made.v1"]
    assert prediction["headers"]["properties"]["ce_source"] == {"enum": ["aimass/infer"]}
    assert "probability" in str(resolve(prediction["payload"]["$ref"]))
    consume = document["operations"]["infer.consume.records.clean"]
    assert consume["bindings"]["kafka"]["groupId"]["enum"] == ["aimass-infer"]


def test_a_new_topic_or_a_changed_schema_changes_the_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = asyncapi.reference_settings(tmp_path)
    baseline = asyncapi.render(asyncapi.project_document(asyncapi.build_services(settings)))

    services = asyncapi.build_services(settings)

    class ReportAudited(BaseModel):
        what: str

    report = next(s for s in services if s.name == "report")
    report.publisher(Topic.AUDIT, entity="report", verb="audited", schema=ReportAudited)
    with_topic = asyncapi.render(asyncapi.project_document(services))
    assert with_topic != baseline
    assert "report.publish.audit" in with_topic and "org.aimass.report.audited.v1" in with_topic

    declare = Service.publisher

    def with_extra_field(self: Service, topic: Topic, *, schema: type[BaseModel], **kwargs: Any) -> Any:
        if topic is Topic.PREDICTIONS:
            schema = create_model(schema.__name__, __base__=schema, added_without_regenerating=(int, 0))
        return declare(self, topic, schema=schema, **kwargs)

    monkeypatch.setattr(Service, "publisher", with_extra_field)
    changed = asyncapi.render(asyncapi.project_document(asyncapi.build_services(settings)))
    assert changed != baseline and "added_without_regenerating" in changed


def test_check_mode_fails_on_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(asyncapi.OUTPUT.read_text().replace("aimass.predictions.fused", "aimass.predictions.merged"))
    monkeypatch.setattr(asyncapi, "OUTPUT", stale)
    assert asyncapi.main(["--check"]) == 1
    assert "+    address: aimass.predictions.fused" in capsys.readouterr().out


async def test_each_service_serves_its_own_spec(tmp_path: Path) -> None:
    services = asyncapi.build_services(asyncapi.reference_settings(tmp_path))
    infer = next(s for s in services if s.name == "infer")
    infer.gate.verifier = local_identity().verifier()
    headers = local_identity().headers("hungary")  # any client of the platform may read what its topics carry
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=infer.http), base_url="http://test") as client:
        anonymous = await client.get("/asyncapi")
        text = await client.get("/asyncapi", headers=headers)
        json_doc = await client.get("/asyncapi.json", headers=headers)
    assert anonymous.status_code == 401
    assert text.status_code == 200 and text.headers["content-type"].startswith("application/yaml")
    spec = yaml.safe_load(text.text)
    assert spec["info"]["title"] == "AI Mass infer"
    addresses = {c["address"] for c in spec["channels"].values()}
    assert {"aimass.records.clean", "aimass.predictions"} <= addresses
    assert json_doc.json()["channels"].keys() == spec["channels"].keys()


def test_reference_settings_ignore_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMASS_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("AIMASS_KAFKA_BOOTSTRAP", "kafka.example:9093")
    settings: Settings = asyncapi.reference_settings(tmp_path)
    assert (settings.topic_prefix, settings.kafka_bootstrap) == ("aimass.", "127.0.0.1:9092")
