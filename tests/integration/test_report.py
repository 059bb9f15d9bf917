"""report as a real process on the real broker: the issue's done-when cases.

A fused result of a real UCI record (scored by small ONNX models trained on the UCI data and installed in the
test's own registry) is published on ``predictions.fused`` as fuse would; the report must come out on ``reports``,
render as HTML, PDF and FHIR over HTTP, and still be there after the service restarts.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.riskassessment import RiskAssessment
from pypdf import PdfReader

from shared.broker import ensure_topics
from shared.schemas.audit import AccessEvent
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.settings import Settings
from shared.topics import CE_ID, DLQ_ERROR, Topic, cloudevent_headers, decode_headers, event_type, topic_name
from tests.support.factories.report import fused_for, heart_records, install_models, record_from
from tests.support.identity import local_identity
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration

SITES = ("cleveland", "hungary", "va-long-beach")
TIMEOUT = 40.0


@pytest.fixture(scope="module")
def report_settings(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Settings:
    """Own topic prefix and data dir: no other test's fused results or reports mix with these."""
    own = settings_for(tmp_path_factory.mktemp("report-var"), f"it-report-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own))
    install_models(own.data_path / "models", SITES)
    return own


@pytest.fixture(scope="module")
def report(report_settings: Settings) -> Iterator[ServiceProcess]:
    process = ServiceProcess("report", report_settings).start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
async def reports(report_settings: Settings) -> AsyncIterator[TopicReader]:
    reader = await TopicReader(report_settings, Topic.REPORTS).open()
    yield reader
    await reader.close()


@pytest.fixture
async def kafka(report_settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    client = await producer(report_settings)
    yield client
    await client.stop()


async def publish_fused(kafka: AIOKafkaProducer, settings: Settings, fused: FusedPrediction, event_id: str) -> None:
    headers = cloudevent_headers(service="fuse", type_=event_type("prediction", "fused"), event_id=event_id)
    await kafka.send_and_wait(
        topic_name(Topic.PREDICTIONS_FUSED, settings.topic_prefix),
        fused.model_dump_json().encode(),
        key=fused.patient.encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


def of_record(record_id: str) -> object:
    return lambda r: ReportMessage.model_validate_json(r.value).record_id == record_id


def risk_in_pdf(pdf: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


async def test_a_fused_result_yields_a_report_that_renders_and_survives_a_restart(
    report: ServiceProcess, reports: TopicReader, kafka: AIOKafkaProducer, report_settings: Settings
) -> None:
    fused = fused_for(record_from("switzerland", 5), SITES)
    await publish_fused(kafka, report_settings, fused, f"fused-{uuid.uuid4()}")
    [record] = await reports.wait_for(of_record(fused.record_id), timeout=TIMEOUT)
    message = ReportMessage.model_validate_json(record.value)
    headers = decode_headers(record.headers)
    assert headers[CE_ID] == message.report_id and headers["ce_type"] == "org.aimass.report.published.v1"
    assert record.key == fused.patient.encode()
    assert message.patient == fused.patient and message.task == "heart_disease"
    assessment = RiskAssessment.model_validate(message.risk_assessment)
    assert float(assessment.prediction[0].probabilityDecimal) == pytest.approx(fused.probability, abs=1e-6)
    DiagnosticReport.model_validate(message.diagnostic_report)
    assert message.url == f"{report.url}/reports/{message.report_id}"

    swiss = local_identity().headers("switzerland")  # the patient's hospital
    html = httpx.get(message.url, headers=swiss, timeout=10)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert fused.patient in html.text and "does not replace" in html.text
    pdf = httpx.get(message.url, params={"format": "pdf"}, headers=swiss, timeout=10)
    assert pdf.headers["content-type"] == "application/pdf"
    assert f"{fused.probability * 100:.1f}%" in risk_in_pdf(pdf.content)
    fhir = httpx.get(message.url, params={"format": "fhir"}, headers=swiss, timeout=10)
    assert fhir.headers["content-type"] == "application/fhir+json"
    Bundle.model_validate(fhir.json())
    listing = report.get(f"/patients/{fused.patient}/reports", hospital="switzerland", timeout=10).json()
    assert [r["report_id"] for r in listing["reports"]] == [message.report_id]
    metrics = report.get("/metrics", timeout=10).text
    assert 'aimass_report_rendered_total{format="pdf",task="heart_disease"}' in metrics

    report.stop()
    report.start()
    report.wait_ready()
    again = httpx.get(message.url, params={"format": "pdf"}, headers=swiss, timeout=10)
    assert again.status_code == 200 and again.content == pdf.content
    assert httpx.get(message.url, headers=swiss, timeout=10).text == html.text
    listing = report.get(f"/patients/{fused.patient}/reports", hospital="switzerland", timeout=10).json()
    assert [r["report_id"] for r in listing["reports"]] == [message.report_id]


async def test_reads_need_a_token_of_the_patient_s_hospital_and_each_leaves_one_audit_event(
    report: ServiceProcess, reports: TopicReader, kafka: AIOKafkaProducer, report_settings: Settings
) -> None:
    """The issue's checks on the real stack: no token 401, another hospital's token 403, one AuditEvent per read on
    the audit topic (and per refusal), a signed link a browser opens without a token."""
    fused = fused_for(record_from("cleveland", 7), SITES)
    await publish_fused(kafka, report_settings, fused, f"fused-{uuid.uuid4()}")
    [record] = await reports.wait_for(of_record(fused.record_id), timeout=TIMEOUT)
    message = ReportMessage.model_validate_json(record.value)
    audit = await TopicReader(report_settings, Topic.AUDIT).open()
    try:
        assert httpx.get(message.url, timeout=10).status_code == 401
        other = httpx.get(message.url, headers=local_identity().headers("hungary"), timeout=10)
        assert other.status_code == 403 and "another hospital" in other.json()["error_description"]
        operator = httpx.get(message.url, params={"format": "fhir"}, headers=local_identity().headers(), timeout=10)
        assert operator.status_code == 403 and operator.json()["resourceType"] == "OperationOutcome"
        own = local_identity().headers("cleveland")
        for fmt in ("html", "pdf", "fhir"):
            assert httpx.get(message.url, params={"format": fmt}, headers=own, timeout=10).status_code == 200
        link = httpx.post(f"{message.url}/link", headers=own, timeout=10).json()["url"]
        opened = httpx.get(link, headers={"accept": "text/html"}, timeout=10)
        assert opened.status_code == 200 and fused.patient in opened.text

        access = event_type("access", "audited")

        def about_this_report(r: ConsumerRecord) -> bool:
            return decode_headers(r.headers).get("ce_type") == access and message.report_id.encode() in r.value

        events = await audit.wait_for(about_this_report, count=8, timeout=TIMEOUT)
    finally:
        await audit.close()
    parsed = [AccessEvent.model_validate_json(r.value) for r in events]
    for r in events:  # FHIR R4 AuditEvents, as FHIR validates them
        FhirAuditEvent.model_validate_json(r.value)

    def who(event: AccessEvent) -> str | None:
        return event.agent[0].who.identifier.value if event.agent[0].who.identifier else None

    # Refusals name no patient, so they are keyed by client and land on any partition; what was read is keyed by the
    # patient (the contract's key), so its events keep their order.
    refusals = sorted((e.outcome, e.action, who(e)) for e in parsed if e.outcome != "0")
    assert refusals == [
        ("4", "R", "hungary-backend"),  # a valid token of another hospital: refused, and named
        ("4", "R", "ops-monitoring"),
        ("4", "R", "unauthenticated"),
    ]
    granted = [(e.action, who(e)) for e in parsed if e.outcome == "0"]
    assert granted == [("R", "cleveland-backend")] * 3 + [("C", "cleveland-backend"), ("R", "cleveland-backend")]
    reads = [e for e in parsed if e.outcome == "0" and e.action == "R"]
    assert all(fused.patient in (x.what.identifier.value for x in e.entity if x.what.identifier) for e in reads)
    assert all(message.report_id in e.entity[0].what.reference for e in reads)
    keyed = [r.key for r, e in zip(events, parsed, strict=True) if e.outcome == "0"]
    assert set(keyed) == {fused.patient.encode()}  # keyed by the patient, as the contract asks


async def test_a_redelivered_result_gives_the_same_report(
    report: ServiceProcess, reports: TopicReader, kafka: AIOKafkaProducer, report_settings: Settings
) -> None:
    fused = fused_for(record_from("hungary", 10), SITES)
    event_id = f"fused-{uuid.uuid4()}"
    await publish_fused(kafka, report_settings, fused, event_id)
    await publish_fused(kafka, report_settings, fused, event_id)
    found: list[ConsumerRecord] = await reports.wait_for(of_record(fused.record_id), count=2, timeout=TIMEOUT)
    assert len({decode_headers(r.headers)[CE_ID] for r in found}) == 1  # consumers de-duplicate on ce_id
    listing = report.get(f"/patients/{fused.patient}/reports", hospital="hungary", timeout=10).json()
    assert len(listing["reports"]) == 1


async def test_a_malformed_result_is_dead_lettered_and_the_service_goes_on(
    report: ServiceProcess, kafka: AIOKafkaProducer, report_settings: Settings
) -> None:
    deadletters = await TopicReader(report_settings, Topic.DEADLETTER).open()
    try:
        bad = fused_for(record_from("cleveland", 3), SITES).model_copy(update={"task": "no_such_task"})
        await publish_fused(kafka, report_settings, bad, f"fused-{uuid.uuid4()}")
        [letter] = await deadletters.wait_for(lambda r: r.value == bad.model_dump_json().encode(), timeout=TIMEOUT)
        reason = decode_headers(letter.headers)[DLQ_ERROR]
        assert "no_such_task" in reason and "no task file" in reason
        assert bad.patient not in reason
    finally:
        await deadletters.close()
    assert httpx.get(f"{report.url}/healthz", timeout=5).status_code == 200


async def test_a_burst_of_results_is_reported_whole_in_batches(
    report: ServiceProcess, reports: TopicReader, kafka: AIOKafkaProducer, report_settings: Settings
) -> None:
    """60 fused results published at once (two of them bad) are consumed in batches: every good one gets its
    report, each bad one its dead letter, and a report's PDF, rendered when first asked for, parses."""
    deadletters = await TopicReader(report_settings, Topic.DEADLETTER).open()
    try:
        run = uuid.uuid4().hex[:6]
        results = [
            fused_for(r, SITES).model_copy(update={"record_id": f"burst-{run}-{n}"})
            for n, r in enumerate(heart_records()[::16][:60])
        ]
        bad = {
            7: results[7].model_copy(update={"task": "no_such_task"}),
            40: results[40].model_copy(update={"features": results[40].features[:3]}),
        }
        for n, fused in enumerate(results):
            await publish_fused(kafka, report_settings, bad.get(n, fused), f"fused-{run}-{n}")
        good = {f.record_id for n, f in enumerate(results) if n not in bad}
        found = await reports.wait_for(
            lambda r: ReportMessage.model_validate_json(r.value).record_id in good, count=len(good), timeout=120
        )
        assert {ReportMessage.model_validate_json(r.value).record_id for r in found} == good
        bad_values = {b.model_dump_json().encode() for b in bad.values()}
        letters = await deadletters.wait_for(lambda r: r.value in bad_values, count=2, timeout=TIMEOUT)
        reasons = sorted(decode_headers(r.headers)[DLQ_ERROR] for r in letters)
        assert "no task file" in " ".join(reasons) and "3 values for task 'heart_disease'" in " ".join(reasons)
    finally:
        await deadletters.close()
    message = ReportMessage.model_validate_json(found[-1].value)
    fused = next(f for f in results if f.record_id == message.record_id)
    pdf = httpx.get(message.url, params={"format": "pdf"}, headers=local_identity().headers(fused.hospital), timeout=30)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert f"{fused.probability * 100:.1f}%" in risk_in_pdf(pdf.content)
