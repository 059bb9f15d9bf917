"""Debian's Prometheus scrapes the six running services with the project's own config and rules.

The committed ``deploy/prometheus/prometheus.yml`` is rewritten only where a test must differ: the services'
ports (free ones, per run) and a one-second scrape interval. Every dashboard query is then run through the real
PromQL engine, so a typo in a panel fails here rather than in front of an operator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from shared.settings import PROJECT_ROOT, SERVICE_NAMES, Settings
from shared.topics import CE_SOURCE, Topic, topic_name
from tests.support.identity import local_identity
from tests.support.kafka import producer
from tests.support.processes import ServiceProcess, free_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="Debian's prometheus is not installed (apt-get install prometheus)"
)
CONFIG_DIR = PROJECT_ROOT / "deploy" / "prometheus"
KEY_SERIES = (
    "faststream_received_messages_total",
    "aimass_events_total",
    "aimass_dependency_up",
    "aimass_deadletters_total",
    "aimass_service_info",
    "aimass_consumer_lag",
)
PER_SERVICE = ("faststream_received_messages_total", "aimass_dependency_up", "aimass_consumer_lag")


def scrape_config_for(settings: Settings) -> dict[str, Any]:
    config = yaml.safe_load((CONFIG_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(CONFIG_DIR / path) for path in config["rule_files"]]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "aimass")
    identity = local_identity()  # the services of this run accept its tokens: Prometheus gets one there
    job["oauth2"].update(
        token_url=f"{identity.url}/token",
        client_secret_file=str(identity.folder / "clients" / f"{job['oauth2']['client_id']}.secret"),
    )
    for target in job["static_configs"]:
        target["targets"] = [f"127.0.0.1:{settings.port_for(target['labels']['component'])}"]
    return config


@pytest.fixture(scope="module")
def prometheus(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, pipeline: dict[str, ServiceProcess]
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config_for(settings)))
    url = f"127.0.0.1:{free_port()}"
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={url}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield f"http://{url}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def api(base: str, path: str, **params: str) -> Any:
    response = httpx.get(f"{base}/api/v1/{path}", params=params, timeout=5)
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def poll(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except (httpx.HTTPError, ValueError, AssertionError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last answer: {last!r}")


async def dead_letter_one_document(settings: Settings) -> None:
    """One undecodable document: ingest counts it and dead-letters it, so the event counters have a sample."""
    client = await producer(settings)
    try:
        await client.send_and_wait(
            topic_name(Topic.INGEST_RAW, settings.topic_prefix),
            b"\x00 not a document",
            headers=[(CE_SOURCE, b"prometheus-test")],
        )
    finally:
        await client.stop()


async def test_prometheus_scrapes_all_six_services_and_finds_the_key_series(
    prometheus: str, settings: Settings
) -> None:
    await dead_letter_one_document(settings)

    def targets_up() -> dict[str, str]:
        active = api(prometheus, "targets", state="active")["activeTargets"]
        health = {t["labels"]["component"]: t["health"] for t in active if t["labels"]["job"] == "aimass"}
        return health if set(health.values()) == {"up"} and len(health) == 6 else {}

    health = poll(targets_up, 60, "all six targets up")
    assert set(health) == set(SERVICE_NAMES)

    for series in KEY_SERIES:

        def present(name: str = series) -> list[dict[str, Any]]:
            return api(prometheus, "query", query=name)["result"]

        poll(present, 30, f"series {series}")
        if series in PER_SERVICE:

            def every_service(name: str = series) -> set[str]:
                found = api(prometheus, "query", query=name)["result"]
                services = {r["metric"].get("app_name") or r["metric"].get("service") for r in found}
                return services if services == set(SERVICE_NAMES) else set()

            poll(every_service, 30, f"{series} from all six services")
    events = api(prometheus, "query", query='aimass_events_total{service="ingest", outcome="deadlettered"}')
    assert events["result"] and float(events["result"][0]["value"][1]) >= 1
    dependencies = api(prometheus, "query", query="min(aimass_dependency_up)")["result"]
    assert float(dependencies[0]["value"][1]) == 1, "every service reaches Kafka and Redis"


def test_rules_load_and_evaluate(prometheus: str) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups = api(prometheus, "rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        never = [r["name"] for r in rules if r["lastEvaluation"].startswith("0001-")]  # Go's zero time
        return rules if rules and not never and all(r["health"] == "ok" for r in rules) else []

    rules = poll(evaluated, 30, "every rule evaluated with health ok")
    names = {r["name"] for r in rules}
    assert {"AimassServiceDown", "AimassNoModelLoaded", "aimass:consumer_lag:sum"} <= names
    firing = api(prometheus, "query", query='ALERTS{alertname="AimassServiceDown"}')["result"]
    assert firing == [], "no service is down"


def test_every_dashboard_query_is_valid_promql(prometheus: str) -> None:
    dashboard = json.loads((PROJECT_ROOT / "deploy" / "grafana" / "dashboards" / "aimass.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(expressions) > 50
    problems = {}
    for expression in expressions:
        body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5).json()
        if body["status"] != "success":
            problems[expression] = body.get("error")
    assert problems == {}
