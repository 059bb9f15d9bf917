"""The deployment files hold together: compose, Dockerfile, Kubernetes manifests, Prometheus and Grafana.

No Docker engine or Kubernetes runs here, so these are structural checks; promtool checks the Prometheus files
when it is installed (Debian's prometheus package brings it).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import PROJECT_ROOT, SERVICE_NAMES, Settings

PORTS = {name: Settings().port_for(name) for name in SERVICE_NAMES}
CONTRACT_PORTS = {"ingest": 8101, "clean": 8102, "train": 8103, "infer": 8104, "fuse": 8105, "report": 8106}
DEPLOY = PROJECT_ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_default_ports_are_the_contract_ones() -> None:
    assert CONTRACT_PORTS == PORTS


# -- docker-compose.yml -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def test_compose_runs_kafka_in_kraft_mode_redis_prometheus_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {*SERVICE_NAMES, "kafka", "redis", "prometheus", "grafana"} <= services.keys()
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "zookeeper" not in json.dumps(compose).lower()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID must be a base64 UUID"
    assert "healthcheck" in kafka and "healthcheck" in services["redis"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_compose_service_has_its_contract_port_settings_and_dependencies(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    port = CONTRACT_PORTS[name]
    env = service["environment"]
    assert service["command"] == ["run", name]
    assert env[f"AIMASS_{name.upper()}_PORT"] == str(port)
    assert env["AIMASS_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["AIMASS_REDIS_URL"].startswith("redis://redis:6379")
    assert env["AIMASS_HTTP_HOST"] == "0.0.0.0"
    assert "AIMASS_PSEUDONYM_KEY" in env
    assert env["AIMASS_PROBE_URL"] == f"http://127.0.0.1:{port}/healthz"
    assert any(str(p).endswith(f":{port}:{port}") for p in service["ports"])
    assert service["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert service["build"]["target"] == ("train" if name == "train" else "service")


def test_compose_mounts_files_that_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), source


def test_dockerfile_keeps_torch_out_of_the_service_image() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    names = {s.split()[2]: s for s in stages if " AS " in s.split("\n")[0]}
    assert {"base", "train", "service"} <= names.keys()
    assert stages[-1].startswith("base AS service"), "plain `docker build .` must give the slim image"
    assert "torch" not in names["base"] + names["service"]
    assert "torch" in text.split("AS train-deps")[1].split("FROM")[0]


# -- Kubernetes ---------------------------------------------------------------------------------------------------
def test_k8s_deployments_probe_health_and_use_contract_ports() -> None:
    documents = [d for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in load_yaml_documents(path)]
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert deployments.keys() == set(SERVICE_NAMES)
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["run", name]
        assert container["ports"][0]["containerPort"] == CONTRACT_PORTS[name]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(CONTRACT_PORTS[name])
    assert deployments["train"]["spec"]["replicas"] == 1, "train owns the training store: one writer"
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    autoscaler = next(d for d in documents if d["kind"] == "HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "infer"
    assert autoscaler["spec"]["maxReplicas"] <= int(config["data"]["AIMASS_TOPIC_PARTITIONS"]), (
        "replicas beyond the partition count get no partition"
    )


# -- Prometheus ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.docker.yml"])
def test_prometheus_scrapes_the_six_services(config: str) -> None:
    document = yaml.safe_load((DEPLOY / "prometheus" / config).read_text())
    job = next(j for j in document["scrape_configs"] if j["job_name"] == "aimass")
    if "static_configs" in job:
        targets = {t["labels"]["component"]: t["targets"] for t in job["static_configs"]}
        assert targets == {n: [f"127.0.0.1:{p}"] for n, p in CONTRACT_PORTS.items()}
    else:
        assert {(d["names"][0], d["port"]) for d in job["dns_sd_configs"]} == set(CONTRACT_PORTS.items())


@needs_promtool
@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "config", "deploy/prometheus/prometheus.docker.yml"],
        ["check", "rules", "deploy/prometheus/rules/recording.yml", "deploy/prometheus/rules/alerts.yml"],
        ["test", "rules", "deploy/prometheus/tests/alerts_test.yml"],
    ],
    ids=["config", "docker-config", "rules", "alert-tests"],
)
def test_promtool(args: list[str]) -> None:
    result = subprocess.run(
        [PROMTOOL or "promtool", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_of_the_issue_exist() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    assert {
        "AimassServiceDown",
        "AimassConsumerLagHigh",
        "AimassDeadLetterRate",
        "AimassHandlerErrorRate",
        "AimassInferenceP99High",
        "AimassCacheHitRatioCollapse",
        "AimassNoModelLoaded",
    } <= alerts
    operations = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"### {alert}" in operations, f"docs/operations.md does not explain {alert}"


# -- Grafana ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "aimass.json").read_text())


def test_dashboard_has_the_structure_grafana_needs(dashboard: dict[str, Any]) -> None:
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["pipeline", *SERVICE_NAMES]
    for panel in (p for p in panels if p["type"] != "row"):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["datasource"]["uid"] == uid
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert target["datasource"]["uid"] == uid


def test_dashboard_json_is_what_the_builder_writes(dashboard: dict[str, Any]) -> None:
    spec = importlib.util.spec_from_file_location("build_dashboard", DEPLOY / "grafana" / "build_dashboard.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = builder  # its dataclasses look their module up there
    spec.loader.exec_module(builder)
    assert (DEPLOY / "grafana" / "dashboards" / "aimass.json").read_text() == builder.render(), (
        "run .venv/bin/python deploy/grafana/build_dashboard.py and commit the JSON"
    )


def catalogued_metrics() -> set[str]:
    catalogue = (PROJECT_ROOT / "docs" / "operations.md").read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(aimass_[a-z_]+)`", catalogue))


def test_every_metric_in_the_code_is_catalogued() -> None:
    sources = [p for folder in ("shared", "services") for p in (PROJECT_ROOT / folder).rglob("*.py")]
    defined = {m for p in sources for m in re.findall(r'"(aimass_[a-z_]+)"', p.read_text())}
    defined = {"aimass_service_info" if m == "aimass_service" else m for m in defined}  # Info adds _info
    assert sorted(defined - catalogued_metrics()) == [], "add them to docs/operations.md, section Metrics"


def test_every_catalogued_metric_is_on_the_dashboard_or_in_a_rule(dashboard: dict[str, Any]) -> None:
    names = catalogued_metrics() - {"aimass_service_info"}
    assert len(names) >= 30
    used = json.dumps(dashboard) + "".join(p.read_text() for p in (DEPLOY / "prometheus" / "rules").glob("*.yml"))
    assert sorted(n for n in names if n not in used) == []


# -- who may do what (shared/principals.py) -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(
        topic_prefix="aimass.", var_dir=tmp_path_factory.mktemp("var"), pseudonym_key="deploy-files-test-key-0123"
    )
    return {name: importlib.import_module(f"services.{name}.app").create_service(settings) for name in SERVICE_NAMES}


def test_each_service_may_read_and_write_exactly_what_its_code_declares(built_services: dict[str, Any]) -> None:
    from shared.principals import Operation, Pattern, Resource, kafka_acls, service_principal
    from shared.topics import hospital_of_input_topic

    acls = kafka_acls("aimass.", ["cleveland"])
    for name, service in built_services.items():
        own = [a for a in acls if a.principal == service_principal(name) and a.pattern is Pattern.LITERAL]
        granted = {(a.resource, a.operation): set() for a in own}
        for a in own:
            granted[(a.resource, a.operation)].add(a.name)
        subscribed = {t for s in service.broker.subscribers for t in s.topic_names}
        consumed = {t for t in subscribed if hospital_of_input_topic(t, "aimass.") is None}
        hospital_inputs = subscribed - consumed  # ingest's: read through the one PREFIXED ACL on ingest.raw.
        groups = {s.group_id for s in service.broker.subscribers if s.group_id}
        published = {p.topic for p in service.broker.publishers}
        assert granted[(Resource.TOPIC, Operation.READ)] == consumed, name  # nothing more to read than it consumes
        prefixed = {a.name for a in acls if a.principal == service_principal(name) and a.pattern is Pattern.PREFIXED}
        assert prefixed == ({"aimass.ingest.raw."} if hospital_inputs else set()), name
        assert granted[(Resource.TOPIC, Operation.CREATE)] - consumed <= {"aimass.ingest.raw.cleveland"}, name
        assert granted[(Resource.GROUP, Operation.READ)] == groups, name
        # What it publishes, exactly; audit for every service (access auditing) even before its code writes it.
        assert granted[(Resource.TOPIC, Operation.WRITE)] - {"aimass.audit"} == published - {"aimass.audit"}, name


def test_nothing_new_can_be_created_and_a_hospital_only_writes_its_own_topic() -> None:
    from shared.principals import Operation, Pattern, Resource, deployment_topics, hospital_principal, kafka_acls

    acls = kafka_acls("aimass.", ["cleveland", "hungary"])
    assert {a.operation for a in acls} == {Operation.READ, Operation.WRITE, Operation.CREATE}  # no ALTER, DELETE
    assert {a.resource for a in acls} == {Resource.TOPIC, Resource.GROUP}  # nothing on the cluster
    creatable = [a for a in acls if a.operation is Operation.CREATE]
    # Only literal names the admin makes at start: creating one of them again changes nothing.
    assert {a.pattern for a in creatable} == {Pattern.LITERAL}
    assert {a.name for a in creatable} <= set(deployment_topics("aimass.", ["cleveland", "hungary"]))
    for hospital in ("cleveland", "hungary"):
        own = [a for a in acls if a.principal == hospital_principal(hospital)]
        assert [(a.resource, a.name, a.operation) for a in own] == [
            (Resource.TOPIC, f"aimass.ingest.raw.{hospital}", Operation.WRITE)
        ]
    # The shared ingest.raw: no hospital; the doors, which set ce_source themselves: ingest (MLLP, FHIR REST) and
    # report (a clinician's answer on the questioning page).
    writers = [a.principal for a in acls if a.name == "aimass.ingest.raw" and a.operation is Operation.WRITE]
    assert writers == ["svc-ingest", "svc-report"]


def test_docs_security_shows_the_tables_of_the_code() -> None:
    from shared.principals import hospital_ids, markdown_tables

    document = (PROJECT_ROOT / "docs" / "security.md").read_text()
    kafka, redis = markdown_tables("aimass.", hospital_ids(DEPLOY / "hospitals")).split("\n\n")
    hint = "paste the tables `.venv/bin/python -m shared.principals` prints into docs/security.md"
    assert kafka in document.split("\n## Redis")[0].split("\n## Kafka")[1], hint
    assert redis in document.split("\n## Redis")[1], hint
