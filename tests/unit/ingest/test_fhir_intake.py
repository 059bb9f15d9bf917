"""FHIR REST intake without a broker: Cleveland's real Bundles posted with the hospital's token, what is refused and
the OperationOutcome that names the element (validated with fhir.resources), re-posts that are the same event, and
NDJSON uploads in FHIR Bulk Data's shape."""

from __future__ import annotations

import copy
import json
from functools import partial
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from services.cli.scenario import formats
from services.cli.scenario.heart import records_by_hospital
from services.ingest import fhir_intake as rules
from services.ingest.adapters.fhir_routes import IMPORT_MAX_BYTES, FhirRoutes
from services.ingest.documents import ReadOptions, read_document
from services.ingest.doors import Door
from services.ingest.fhir_rest import FhirIntake
from services.ingest.metrics import DoorMetrics, IngestMetrics
from shared.auth import SCOPE_REPORTS, SCOPE_SUBMIT, Gate, Principal, refusal_response
from shared.errors import RejectedInput
from shared.http import HttpApp, Refused, Request, Response
from shared.metrics import ServiceMetrics
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE
from tests.support.factories.ingest import TABLES, pseudonymize
from tests.support.fakes import Acknowledgements, RecordingDeadLetters, RecordingPublisher, RecordingRaw
from tests.support.identity import local_identity

FHIR = {"content-type": "application/fhir+json"}
NDJSON = {"content-type": "application/fhir+ndjson"}
ROWS = records_by_hospital(3)["cleveland"]


def bundle(row: int = 0) -> dict[str, Any]:
    return formats.fhir_bundle(ROWS[row])


def quantity_entry(entries: list[dict[str, Any]]) -> int:
    """The first entry with a valueQuantity (the blood pressure panel has components instead)."""
    return next(n for n, e in enumerate(entries) if "valueQuantity" in e.get("resource", e))


class Intake:
    """The routes on an HttpApp with the test identity provider's gate, over fakes of the broker."""

    def __init__(self, *, failures: int = 0, gate: Gate | None = None, max_document_bytes: int = 2_000_000) -> None:
        self.acks = Acknowledgements(failures=failures)
        self.registry = ServiceMetrics("ingest").registry
        read = partial(read_document, pseudonymize=pseudonymize, max_bytes=2_000_000, options=ReadOptions(TABLES))
        door = Door(
            read,
            RecordingRaw(self.acks),
            RecordingDeadLetters(self.acks),
            RecordingPublisher(self.acks, "audit"),
            IngestMetrics(self.registry),
            "unit.ingest.raw",
        )
        http = HttpApp(None)  # type: ignore[arg-type]

        async def refused(request: Request, refusal: Refused) -> Response:  # as Service answers (and audits) them
            return refusal_response(request, refusal)

        http.refused = refused
        FhirRoutes(FhirIntake(door, DoorMetrics(self.registry))).install(
            http, gate or Gate(local_identity().verifier()), max_document_bytes
        )
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(http), base_url="http://unit")

    @property
    def raw(self) -> list[tuple[bytes, dict[str, str], str]]:
        return self.acks.of("raw")

    async def post(self, path: str, body: bytes | dict[str, Any], headers: dict[str, str], hospital: str = "cleveland"):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post(path, content=content, headers={**headers, **local_identity().headers(hospital)})


def outcome_of(answer: httpx.Response) -> OperationOutcome:
    assert answer.headers["content-type"] == "application/fhir+json"
    return OperationOutcome.model_validate(answer.json())  # a valid R4B OperationOutcome, or this raises


# -- the pure rules ------------------------------------------------------------------------------------------------
def test_the_element_of_ingests_reasons_as_fhirpath() -> None:
    reason = "FHIR Bundle.entry[3] Observation.valueQuantity.value: Input should be a valid number"
    assert rules.expressions(reason) == ["Bundle.entry[3].resource.valueQuantity.value"]
    assert rules.expressions("FHIR Observation.subject: required to tell whose it is") == ["Observation.subject"]
    assert rules.expressions("FHIR: Expecting value at line 1 column 1") == []


@pytest.mark.parametrize(
    ("change", "path", "element"),
    [
        ({"type": "searchset"}, None, "Bundle.type"),
        ({"type": "message"}, None, "Bundle.entry[0]"),  # a message Bundle starts with its MessageHeader
        ({"resourceType": "Observation"}, None, "Observation.resourceType"),
        ({}, "Observation", "Bundle.resourceType"),
    ],
)
def test_what_a_posted_document_must_be(change: dict[str, Any], path: str | None, element: str) -> None:
    with pytest.raises(RejectedInput) as refused:
        rules.posted_resource(json.dumps({**bundle(), **change}).encode(), path)
    assert element in refused.value.reason


def test_event_ids_a_bundle_identifier_or_the_bytes() -> None:
    body = json.dumps(bundle()).encode()
    assert rules.event_id(json.loads(body), body) == rules.event_id(json.loads(body), body)
    assert rules.event_id({}, body) != rules.event_id({}, body + b" ")
    identified = {**bundle(), "identifier": {"system": "urn:cleveland:exports", "value": "E-7"}}
    again = {**bundle(1), "identifier": {"system": "urn:cleveland:exports", "value": "E-7"}}
    assert rules.event_id(identified, b"a") == rules.event_id(again, b"b")  # the identifier decides
    assert "E-7" not in rules.event_id(identified, b"a")  # a digest: no identifier travels in an id


def bulk_export(row: int = 0) -> list[dict[str, Any]]:
    """Bundle ``row`` as a Bulk Data export writes it: one resource per line, references as ``Patient/<id>``."""
    entries = bundle(row)["entry"]
    ids = {entry["fullUrl"]: f"{entry['resource']['resourceType']}/r{row}-{n}" for n, entry in enumerate(entries)}
    resources = []
    for entry in copy.deepcopy(entries):
        resource = entry["resource"]
        resource["id"] = ids[entry["fullUrl"]].split("/")[1]
        for name in ("subject", "encounter"):
            if name in resource:
                resource[name]["reference"] = ids[resource[name]["reference"]]
        resources.append(resource)
    return resources


def ndjson(resources: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in resources) + b"\n"


def test_a_bulk_export_becomes_one_document_per_patient_encounter() -> None:
    lines = bulk_export(0) + bulk_export(1)
    documents, problems = rules.import_documents(ndjson(lines) + b"{not json\n")
    assert [p.line for p in problems] == [len(lines) + 1]
    assert len(documents) == 2  # two patients, one encounter each
    first = json.loads(documents[0].body)
    assert [e["resource"]["resourceType"] for e in first["entry"][:2]] == ["Patient", "Encounter"]
    assert sorted(documents[0].lines) == list(range(1, len(bulk_export(0)) + 1))
    again, _ = rules.import_documents(ndjson(lines))
    assert [d.event_id for d in again] == [d.event_id for d in documents]  # the same upload, the same events


# -- through the routes --------------------------------------------------------------------------------------------
async def test_a_posted_bundle_is_checked_written_as_the_tokens_hospital_and_answered_202() -> None:
    intake = Intake()
    body = json.dumps(bundle()).encode()
    answer = await intake.post("/fhir", body, {**FHIR, CE_SOURCE: "hungary"})  # a header claim counts for nothing
    assert answer.status_code == 202, answer.text
    assert answer.json()["records"] == 1
    [(document, headers, key)] = intake.raw
    assert document == body and headers[CE_SOURCE] == "cleveland" and key == "cleveland"
    assert headers[CE_ID] == answer.json()["id"] == rules.event_id(json.loads(body), body)
    assert headers[CONTENT_TYPE] == "application/fhir+json"
    again = await intake.post("/fhir", body, FHIR)
    assert again.json()["id"] == answer.json()["id"]  # a retried request is the same event: absorbed downstream


async def test_one_resource_to_its_type() -> None:
    intake = Intake()
    observation = copy.deepcopy(bundle()["entry"][2]["resource"])
    observation["subject"] = {"identifier": {"system": "urn:hospital:cleveland:mrn", "value": "CCF-1"}}
    del observation["encounter"]
    answer = await intake.post("/fhir/Observation", observation, FHIR)
    assert answer.status_code == 202, answer.text
    wrong = await intake.post("/fhir/Condition", observation, FHIR)
    assert wrong.status_code == 422
    assert outcome_of(wrong).issue[0].expression == ["Observation.resourceType"]


async def test_a_bad_bundle_is_refused_with_an_operation_outcome_naming_the_element() -> None:
    intake = Intake()
    transaction = {**bundle(), "type": "transaction"}
    bad = quantity_entry(transaction["entry"])
    transaction["entry"][bad]["resource"]["valueQuantity"]["value"] = "high"
    answer = await intake.post("/fhir", transaction, FHIR)
    assert answer.status_code == 422
    [issue] = outcome_of(answer).issue
    assert issue.severity == "error" and issue.expression == [f"Bundle.entry[{bad}].resource.valueQuantity.value"]
    assert "high" not in issue.diagnostics  # ingest's reasons never quote a value
    assert intake.raw == []  # a transaction is all or nothing
    [audit] = intake.acks.of("audit")
    assert audit.event.outcome == "rejected" and audit.event.hospital == "cleveland"

    collection = {**transaction, "type": "collection"}  # any other Bundle goes on without the bad entry
    answer = await intake.post("/fhir", collection, FHIR)
    assert answer.status_code == 202 and len(intake.raw) == 1
    [warning] = OperationOutcome.model_validate(answer.json()["outcome"]).issue
    assert warning.severity == "warning" and warning.expression == [f"Bundle.entry[{bad}].resource.valueQuantity.value"]

    garbage = await intake.post("/fhir", b"{not json", FHIR)
    assert garbage.status_code == 400 and outcome_of(garbage).issue[0].code == "structure"
    plain = await intake.post("/fhir", bundle(), {"content-type": "text/plain"})
    assert plain.status_code == 415


async def test_a_token_of_no_hospital_or_without_the_scope_is_refused_403() -> None:
    class NoHospital:
        issuer = "unit"

        async def principal(self, token: str) -> Principal:
            return Principal("operator-tool", None, frozenset({SCOPE_SUBMIT}))

    intake = Intake(gate=Gate(NoHospital()))  # type: ignore[arg-type]
    answer = await intake.client.post("/fhir", json=bundle(), headers={**FHIR, "authorization": "Bearer anything"})
    assert answer.status_code == 403 and "no hospital" in answer.text
    assert intake.raw == []

    scoped = Intake()
    reports_only = local_identity().headers("cleveland", SCOPE_REPORTS)
    answer = await scoped.client.post("/fhir", json=bundle(), headers={**FHIR, **reports_only})
    assert answer.status_code == 403 and outcome_of(answer).issue[0].code == "forbidden"
    assert (await scoped.client.post("/fhir", json=bundle(), headers=FHIR)).status_code == 401


async def test_the_broker_not_answering_is_503_and_nothing_is_acknowledged() -> None:
    intake = Intake(failures=1)
    answer = await intake.post("/fhir", bundle(), FHIR)
    assert answer.status_code == 503 and outcome_of(answer).issue[0].code == "transient"


async def test_an_ndjson_upload_with_one_bad_line() -> None:
    intake = Intake()
    lines = bulk_export(0) + bulk_export(1)
    number = quantity_entry(lines)  # an Observation of the first patient
    bad = copy.deepcopy(lines[number])
    bad["valueQuantity"]["value"] = "high"
    body = ndjson([*lines[:number], bad, *lines[number + 1 :]]) + b"[1, 2]\n"
    answer = await intake.post("/fhir/$import", body, NDJSON)
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert result["documents"] == 2 and result["records"] == 2
    assert result["lines_refused"] == 1  # the line that is no resource; the bad entry is dead-lettered downstream
    issues = OperationOutcome.model_validate(result["outcome"]).issue
    by_line = {i.diagnostics.split(":")[0]: i for i in issues}
    assert set(by_line) == {f"line {number + 1}", f"line {len(lines) + 1}"}
    warning = by_line[f"line {number + 1}"]
    assert warning.severity == "warning" and warning.expression == ["Observation.valueQuantity.value"]
    assert len(intake.raw) == 2 and {h[CE_SOURCE] for _, h, _ in intake.raw} == {"cleveland"}
    nothing = await intake.post("/fhir/$import", b"{}\n", NDJSON)
    assert nothing.status_code == 422


async def test_the_upload_limit_is_the_routes_own() -> None:
    intake = Intake(max_document_bytes=10_000)
    big = ndjson(bulk_export(0)) * 200  # ~1.5 MB: over the 1 MiB default, within $import's limit
    assert len(big) > 1024 * 1024 and len(big) < IMPORT_MAX_BYTES
    assert (await intake.post("/fhir/$import", big, NDJSON)).status_code == 202
    large_bundle = {**bundle(), "entry": bundle()["entry"] * 30}
    assert (await intake.post("/fhir", large_bundle, FHIR)).status_code == 413
