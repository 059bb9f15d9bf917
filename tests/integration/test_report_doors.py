"""report's doors for EHRs on the real broker, report as a real process: the issue's done-when cases for items 4-5.

- CDS Hooks: discovery, and a ``patient-view`` call for a demo patient (a UCI record as the demo plays it, found by
  the MRN of the prefetched Patient) answered with valid cards whose link opens the report;
- rest-hook subscriptions: a receiver that is down for 30 s still gets a notification for every report published
  meanwhile; with a tiny retry budget a delivery that cannot be made is dead-lettered with a reason saying what to
  do, and ``aimass replay`` (the CLI, as an operator runs it) delivers it once the receiver is up.

Two report processes, started together: one with a retry budget far beyond the outage, one with a 3 s budget.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.riskassessment import RiskAssessment

from services.report.cds import CdsDiscovery, CdsResponse
from services.report.delivery import SUBSCRIPTION_HEADER
from services.report.subscriptions import TOPIC
from shared.auth import SCOPE_PREDICT, SCOPE_SUBSCRIBE
from shared.broker import ensure_topics
from shared.pseudonyms import pseudonym
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import (
    DLQ_ERROR,
    DLQ_ORIGINAL_TOPIC,
    DLQ_SERVICE,
    Topic,
    cloudevent_headers,
    decode_headers,
    event_type,
    topic_name,
)
from tests.support.factories.report import HeartRecord, fused_for, install_models, record_from
from tests.support.identity import local_identity
from tests.support.kafka import TopicReader, producer, wait_until
from tests.support.processes import ServiceProcess, environment, free_port, log_tails
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration

SITES = ("cleveland", "hungary", "va-long-beach")
TIMEOUT = 40.0
OUTAGE_SECONDS = 30.0
TINY_BUDGET_SECONDS = 3


# -- a subscriber's endpoint --------------------------------------------------------------------------------------
class Receiver:
    """An EHR's rest-hook endpoint on a fixed port: refused connections until ``up()``, then 200 for every POST."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/aimass"

    def up(self) -> None:
        receiver = self

        class Hook(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Hook)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def notifications(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        with self._lock:
            return list(self.received)

    def report_ids(self) -> list[str]:
        return [bundle["entry"][1]["resource"]["id"] for _, bundle in self.notifications()]


# -- fixtures -----------------------------------------------------------------------------------------------------
def own_settings(tmp_path_factory: pytest.TempPathFactory, name: str) -> Settings:
    """Own topic prefix and data dir: no other test's results, reports or dead letters mix with these."""
    settings = settings_for(tmp_path_factory.mktemp(f"{name}-var"), f"it-{name}-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(settings))
    install_models(settings.data_path / "models", SITES)
    return settings


@pytest.fixture(scope="module")
def patient_settings(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Settings:
    return own_settings(tmp_path_factory, "doors")


@pytest.fixture(scope="module")
def impatient_settings(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Settings:
    return own_settings(tmp_path_factory, "doors-dlq")


@pytest.fixture(scope="module")
def processes(patient_settings: Settings, impatient_settings: Settings) -> Iterator[dict[str, ServiceProcess]]:
    """Both report processes, started at once (their start-ups overlap): ``patient`` retries for 5 min, far beyond
    the outage; ``impatient`` gives up after 3 s."""
    started = {
        "patient": ServiceProcess("report", patient_settings, AIMASS_REPORT_DELIVERY_RETRY_SECONDS="300"),
        "impatient": ServiceProcess(
            "report", impatient_settings, AIMASS_REPORT_DELIVERY_RETRY_SECONDS=str(TINY_BUDGET_SECONDS)
        ),
    }
    try:
        for process in started.values():
            process.start()
        for process in started.values():
            process.wait_ready()
        yield started
    finally:
        for process in started.values():
            process.stop()


@pytest.fixture
async def kafka(patient_settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    client = await producer(patient_settings)  # one broker: the topic names carry the prefix
    yield client
    await client.stop()


async def publish_fused(kafka: AIOKafkaProducer, settings: Settings, fused: FusedPrediction) -> None:
    headers = cloudevent_headers(service="fuse", type_=event_type("prediction", "fused"), event_id=str(uuid.uuid4()))
    await kafka.send_and_wait(
        topic_name(Topic.PREDICTIONS_FUSED, settings.topic_prefix),
        fused.model_dump_json().encode(),
        key=fused.patient.encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


def report_of(fused: FusedPrediction) -> object:
    return lambda r: ReportMessage.model_validate_json(r.value).record_id == fused.record_id


def subscribe(report: ServiceProcess, hospital: str, endpoint: str) -> dict[str, Any]:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "AI Mass results into our EHR",
        "criteria": TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "header": ["Authorization: Bearer receiver-secret"],
        },
    }
    answer = httpx.post(
        f"{report.url}/fhir/Subscription",
        json=body,
        headers=local_identity().headers(hospital, SCOPE_SUBSCRIBE),
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def subscription_status(report: ServiceProcess, hospital: str, subscription_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{report.url}/fhir/Subscription/{subscription_id}",
        headers=local_identity().headers(hospital, SCOPE_SUBSCRIBE),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def metric(report: ServiceProcess, series: str) -> float:
    """The value of one series on ``/metrics`` (0 when absent)."""
    for line in report.get("/metrics", timeout=10).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def check_notification(headers: dict[str, str], bundle: dict[str, Any], report: ServiceProcess) -> int:
    """A notification as the R4 backport has it; its event number."""
    assert headers["content-type"] == "application/fhir+json"
    assert headers["authorization"] == "Bearer receiver-secret"  # the subscription's own header, sent as given
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    status, focus = (entry["resource"] for entry in bundle["entry"])
    Parameters.model_validate(status)
    RiskAssessment.model_validate(focus)
    parts = {p["name"]: p for p in status["parameter"]}
    assert parts["topic"]["valueCanonical"] == TOPIC and parts["type"]["valueCode"] == "event-notification"
    event = {p["name"]: p for p in parts["notification-event"]["part"]}
    assert event["focus"]["valueReference"]["reference"] == f"{report.url}/fhir/RiskAssessment/{focus['id']}"
    return int(event["event-number"]["valueString"])


# -- CDS Hooks ----------------------------------------------------------------------------------------------------
def demo_patient(hospital: str, index: int, settings: Settings) -> tuple[HeartRecord, FusedPrediction]:
    """A record of the demo's UCI data and its fused result, the patient pseudonymized with the deployment's key
    as ingest would have (the factory pseudonymizes with a key of its own)."""
    record = record_from(hospital, index)
    assert settings.pseudonym_key is not None
    patient = pseudonym(settings.pseudonym_key.get_secret_value().encode(), hospital, str(record.raw["patient_id"]))
    return record, fused_for(record, SITES).model_copy(update={"patient": patient})


async def test_cds_discovery_and_a_patient_view_call_for_a_demo_patient_give_valid_cards(
    processes: dict[str, ServiceProcess], kafka: AIOKafkaProducer, patient_settings: Settings
) -> None:
    report = processes["patient"]
    record, fused = demo_patient("hungary", 1, patient_settings)  # lacks cholesterol: a suggestion to order it
    reports = await TopicReader(patient_settings, Topic.REPORTS).open()
    try:
        await publish_fused(kafka, patient_settings, fused)
        [made] = await reports.wait_for(report_of(fused), timeout=TIMEOUT)
    finally:
        await reports.close()
    message = ReportMessage.model_validate_json(made.value)

    discovery = httpx.get(f"{report.url}/cds-services", timeout=10)  # open, as the spec has it: no patient data
    assert discovery.status_code == 200
    services = {s.id: s for s in CdsDiscovery.model_validate(discovery.json()).services}
    assert services["aimass-heart-disease"].hook == "patient-view"
    assert services["aimass-heart-disease"].prefetch == {"patient": "Patient/{{context.patientId}}"}

    ehr_patient = {
        "resourceType": "Patient",
        "id": "ehr-77",
        "identifier": [
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "value": str(record.raw["patient_id"]),
            }
        ],
    }
    call = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": "ehr-77"},
        "prefetch": {"patient": ehr_patient},
    }
    answer = httpx.post(
        f"{report.url}/cds-services/aimass-heart-disease",
        json=call,
        headers=local_identity().headers("hungary", SCOPE_PREDICT),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    [card] = CdsResponse.model_validate(answer.json()).cards  # the spec's shapes, checked
    assert f"{fused.probability:.0%}" in card.summary and "risk of" in card.summary
    assert card.detail is not None and "**What drove it**" in card.detail and "**Models:**" in card.detail
    orders = [a.resource for s in card.suggestions or [] for a in s.actions or [] if a.resource]
    assert any(r["code"]["coding"][0]["code"] == "2093-3" for r in orders)  # cholesterol, to be ordered
    assert all(r["subject"]["reference"] == "Patient/ehr-77" for r in orders)  # the EHR's own patient
    [link, asking] = card.links or []
    assert link.url.startswith(f"{message.url}?")
    opened = httpx.get(link.url, headers={"accept": "text/html"}, timeout=10)  # signed: a browser needs no token
    assert opened.status_code == 200 and fused.patient in opened.text
    # The result lacks inputs: the questioning page, signed to read only (the EHR's token may not write documents).
    assert asking.url.startswith(f"{report.url}/patients/{fused.patient}/questions/heart_disease?")
    assert "can=answer" not in asking.url
    questions = httpx.get(asking.url, headers={"accept": "text/html"}, timeout=10)
    assert questions.status_code == 200 and 'id="risk"' in questions.text and 'id="send"' not in questions.text

    refused = httpx.post(
        f"{report.url}/cds-services/aimass-heart-disease",
        json={**call, "context": {"userId": "Practitioner/dr-1"}},
        headers=local_identity().headers("hungary", SCOPE_PREDICT),
        timeout=10,
    )
    assert refused.status_code == 400 and "patientId" in refused.json()["error_description"]
    assert metric(report, 'aimass_report_cds_calls_total{hook="patient-view",outcome="cards"}') == 1


# -- rest-hook subscriptions --------------------------------------------------------------------------------------
async def test_a_receiver_down_for_30_s_still_gets_a_notification_for_every_report_published_meanwhile(
    processes: dict[str, ServiceProcess], kafka: AIOKafkaProducer, patient_settings: Settings
) -> None:
    report = processes["patient"]
    receiver = Receiver()  # down: nothing listens on its port yet
    subscription = subscribe(report, "cleveland", receiver.endpoint)
    went_down = time.monotonic()
    reports = await TopicReader(patient_settings, Topic.REPORTS).open()
    try:
        early = [fused_for(record_from("cleveland", i), SITES) for i in range(10, 13)]
        late = [fused_for(record_from("cleveland", i), SITES) for i in range(13, 15)]
        elsewhere = fused_for(record_from("switzerland", 3), SITES)  # another hospital's: not for this subscriber
        for fused in [*early, elsewhere]:
            await publish_fused(kafka, patient_settings, fused)
        await asyncio.sleep(OUTAGE_SECONDS / 2)  # more while the endpoint is failing and being probed
        for fused in late:
            await publish_fused(kafka, patient_settings, fused)
        made = [
            ReportMessage.model_validate_json((await reports.wait_for(report_of(f), timeout=TIMEOUT))[0].value)
            for f in [*early, *late, elsewhere]
        ]
    finally:
        await reports.close()
    expected = sorted(m.report_id for m in made[:-1])
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - went_down)))
    assert receiver.notifications() == []
    refused_during_outage = metric(report, 'aimass_report_delivery_attempts_total{result="refused"}')
    assert refused_during_outage >= 3  # tried, and failing
    # Not hammered: after the first failures, one probe at a time, 1, 2, 4, 8, 16 s apart.
    assert refused_during_outage <= 4 + 8
    assert metric(report, "aimass_report_deliveries_pending") == len(expected)

    receiver.up()
    try:
        # The next probe comes at most 30 s after the last; then everything waiting goes out.
        await wait_until(lambda: sorted(set(receiver.report_ids())) == expected, 45.0, "every report delivered")
        await asyncio.sleep(1.0)  # nothing more comes: one notification per report
        notifications = receiver.notifications()
    finally:
        receiver.down()
    assert sorted(receiver.report_ids()) == expected, log_tails([report])
    numbers = sorted(check_notification(h, b, report) for h, b in notifications)
    assert numbers == list(range(1, len(expected) + 1))  # the backport's event numbers: each once
    assert all(
        b["entry"][0]["resource"]["parameter"][0]["valueReference"]["reference"].endswith(
            f"/fhir/Subscription/{subscription['id']}"
        )
        for _, b in notifications
    )
    # Counted once the endpoint's 200 is back, and the gauge at the next sweep: a moment after the receiver has it.
    delivered = 'aimass_report_deliveries_total{hospital="cleveland",outcome="delivered"}'
    await wait_until(lambda: metric(report, delivered) == len(expected), 10.0, "the deliveries counted")
    await wait_until(lambda: metric(report, "aimass_report_deliveries_pending") == 0, 10.0, "nothing pending")
    assert subscription_status(report, "cleveland", subscription["id"])["status"] == "active"


async def test_a_delivery_that_cannot_be_made_is_dead_lettered_with_what_to_do_and_replay_delivers_it(
    processes: dict[str, ServiceProcess], kafka: AIOKafkaProducer, impatient_settings: Settings
) -> None:
    report = processes["impatient"]
    receiver = Receiver()
    subscription = subscribe(report, "va-long-beach", receiver.endpoint)
    fused = fused_for(record_from("va-long-beach", 4), SITES)
    deadletters = await TopicReader(impatient_settings, Topic.DEADLETTER).open()
    reports_topic = topic_name(Topic.REPORTS, impatient_settings.topic_prefix)
    try:
        await publish_fused(kafka, impatient_settings, fused)

        def undeliverable(r: ConsumerRecord) -> bool:
            headers = decode_headers(r.headers)
            return headers.get(DLQ_SERVICE) == "report" and headers.get(DLQ_ORIGINAL_TOPIC) == reports_topic

        [letter] = await deadletters.wait_for(undeliverable, timeout=TIMEOUT)
    finally:
        await deadletters.close()
    headers = decode_headers(letter.headers)
    message = ReportMessage.model_validate_json(letter.value)  # the reports record, as it was
    assert message.record_id == fused.record_id and headers[SUBSCRIPTION_HEADER] == subscription["id"]
    reason = headers[DLQ_ERROR]
    assert reason.startswith(f"delivery to {receiver.endpoint} for subscription {subscription['id']} failed ")
    assert "cannot connect" in reason and "fix the endpoint, then `aimass replay --service report" in reason
    # The subscription's status is set last, after the dead letter was acknowledged: the hospital sees it too.
    await wait_until(
        lambda: subscription_status(report, "va-long-beach", subscription["id"])["status"] == "error",
        10.0,
        "the subscription in error",
    )
    assert subscription_status(report, "va-long-beach", subscription["id"])["error"] == reason
    assert metric(report, 'aimass_report_deliveries_total{hospital="va-long-beach",outcome="deadlettered"}') == 1

    receiver.up()
    try:
        # What the reason says to do, as an operator does it.
        command = ["replay", "--service", "report", "--reason", "delivery", "--timeout", "8"]
        replayed = subprocess.run(
            [sys.executable, "-m", "services.cli", *command],
            cwd=PROJECT_ROOT,
            env=environment(impatient_settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert replayed.returncode == 0 and "replayed 1," in replayed.stdout, replayed.stdout + replayed.stderr
        await wait_until(lambda: receiver.report_ids() == [message.report_id], 20.0, "the replayed delivery")
        await asyncio.sleep(1.0)
        [(sent, bundle)] = receiver.notifications()  # once
    finally:
        receiver.down()
    check_notification(sent, bundle, report)
    assert bundle["entry"][1]["resource"] == message.risk_assessment
    delivered = 'aimass_report_deliveries_total{hospital="va-long-beach",outcome="delivered"}'
    await wait_until(lambda: metric(report, delivered) == 1, 10.0, "the delivery counted")
    assert subscription_status(report, "va-long-beach", subscription["id"])["status"] == "active"
