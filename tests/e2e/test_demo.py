"""`make demo`'s scenario on a smaller slice, through all six services as real processes on the real broker.

Four hospitals in four formats, DICOM and broken messages; models trained per hospital and pooled from the streamed
records; held-out patients scored by every model, fused and reported. Then nothing that identified a patient on the
way in may appear on any topic, in any log or in any metric label.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from aiokafka import ConsumerRecord

from services.cli.scenario import summary
from services.cli.simulate import Run
from services.cli.token import links_for, ops_token, patient_link_for, token_for
from services.ingest.dates import MAX_SHIFT_DAYS
from shared.schemas.audit import AccessEvent
from shared.settings import Settings
from shared.topics import CE_TYPE, Topic, decode_headers, event_type
from tests.e2e.conftest import COLLECTED_AT, PER_HOSPITAL
from tests.support.kafka import TopicReader
from tests.support.phi import date_identifiers, describe, dicom_dates, minute_forms, scan_blocking
from tests.support.processes import ServiceProcess


def test_every_held_out_patient_gets_a_fused_result_and_a_readable_report(run: Run, settings: Settings) -> None:
    outcome = run.outcome
    held_out = outcome.scored()
    assert len(held_out) >= 4 * PER_HOSPITAL // 5 - 4, "about a fifth of each hospital is held out"
    assert {outcome.clean[r].hospital for r in held_out} == {"cleveland", "hungary", "va-long-beach", "switzerland"}
    assert set(held_out) <= set(outcome.reports), "a held-out record without a report"
    trained = {c.site for c in run.cards if c.status == "active"}
    assert trained == {"cleveland", "hungary", "va-long-beach", "switzerland", "pooled"}, run.refused
    for record_id in held_out:
        sites = {c.model.site for c in outcome.fused[record_id].contributions}
        assert sites == trained, f"{record_id} fused from {sites}"
    some = outcome.reports[held_out[0]]
    hospital = outcome.hospital_of(some)
    assert httpx.get(some.url, timeout=10).status_code == 401  # a report id alone opens nothing
    token = token_for(settings, hospital)  # as `aimass token --hospital` gets one from the issuer process
    page = httpx.get(some.url, headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert some.patient in page.text and outcome.clean[held_out[0]].patient == some.patient
    other = next(h for h in ("cleveland", "hungary") if h != hospital)
    refused = httpx.get(some.url, headers={"authorization": f"Bearer {token_for(settings, other)}"}, timeout=10)
    assert refused.status_code == 403


def test_the_four_formats_and_dicom_arrive_and_the_broken_messages_are_dead_lettered_with_reasons(run: Run) -> None:
    outcome = run.outcome
    arrived = {(h, f): (records, clean) for h, f, _, records, _, clean in outcome.per_hospital_and_format()}
    for hospital, fmt in [
        ("cleveland", "fhir"),
        ("hungary", "hl7v2"),
        ("va-long-beach", "csv"),
        ("switzerland", "json"),
        ("cleveland", "dicom"),
    ]:
        records, clean = arrived[hospital, fmt]
        assert records > 0 and clean > 0, f"{hospital} {fmt}: {records} records, {clean} clean"
    assert outcome.broken_answered() == len(outcome.scenario.broken) == 6
    reasons = {(d.message.format, d.message.expect): d.reason for d in outcome.deadletters}
    by_expectation = {expect: reason for (_, expect), reason in reasons.items()}
    assert "UTF-8" in by_expectation["bytes that are not UTF-8"]
    assert "age_years" in by_expectation["a negative age"]
    assert "resting_bp_mmhg" in by_expectation["a CSV row with 'high' as the blood pressure"]
    assert "PID" in by_expectation["an ORU without a PID segment: whose results are these?"]
    assert "entry[" in by_expectation["one Observation whose value is not a number: that entry alone is dead-lettered"]
    assert all(d.service == "ingest" for d in outcome.deadletters)


def test_the_summary_shows_every_section_with_this_runs_numbers(run: Run, settings: Settings) -> None:
    outcome = run.outcome
    timings = summary.Timings(sum(run.timings.values()), **run.timings)
    shown = [(r.report_id, outcome.hospital_of(r)) for r in outcome.own_reports()[: summary.REPORT_LINKS]]
    links = links_for(settings, shown)  # what `make demo` prints: links a person clicks, no token in hand
    assert len(links) == len(shown)
    patient, hospital = outcome.own_reports()[0].patient, shown[0][1]
    timeline = patient_link_for(settings, patient, hospital)
    text = summary.render(
        outcome,
        run.cards,
        run.refused,
        timings,
        settings.public_url("report"),
        settings.public_url("infer"),
        links,
        timeline,
    )
    for heading in (
        "What the hospitals sent",
        "Dead letters: 6 of 6",
        "Data quality",
        "Cross-site AUC",
        "Held-out patients",
        "Throughput",
        "Where to look next",
    ):
        assert heading in text
    _, rows, counts = outcome.auc_table()
    fused = dict(rows)["fused"]["all"]
    assert fused is not None and 0.5 < fused <= 1.0, "fused AUC over the held-out patients"
    assert f"{fused:.3f}" in text
    first = links[outcome.own_reports()[0].report_id]
    assert first in text and "sig=" in first
    opened = httpx.get(first, headers={"accept": "text/html"}, timeout=10)
    assert opened.status_code == 200 and outcome.own_reports()[0].patient in opened.text
    assert counts["all n"] == len(outcome.scored())
    assert timeline in text and "can=answer" in timeline
    page = httpx.get(timeline, headers={"accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and patient in page.text and 'id="risk-trend-heart_disease"' in page.text


def test_no_identifier_that_went_in_comes_out_anywhere(
    run: Run, settings: Settings, platform: dict[str, ServiceProcess]
) -> None:
    scenario = run.outcome.scenario
    identifiers = set(scenario.identifiers)
    assert len(identifiers) > 4 * PER_HOSPITAL  # names, MRNs, phones, birth dates, streets
    # The real dates too: every encounter and observation time to the minute, birth dates, and the DICOM samples'
    # dates, in the forms that no date shift and no clock of the platform can produce (tests/support/phi.py).
    patients = [(d.birth, d.care) for d in scenario.dates.values()]
    patients += [dicom_dates(message.body) for message in scenario.imaging]
    dates = date_identifiers(patients, MAX_SHIFT_DAYS, (COLLECTED_AT, datetime.now(UTC)))
    times = [t for d in scenario.dates.values() for t in d.care]
    assert len(times) >= 4 * PER_HOSPITAL and all(minute_forms(t) <= dates for t in times), "every time is scanned"
    operator = {"authorization": f"Bearer {ops_token(settings)}"}
    metrics = [f"{p.url}/metrics" for p in platform.values()]
    hits = scan_blocking(identifiers | dates, settings, metrics_urls=metrics, metrics_headers=operator)
    assert hits == [], describe(hits)


def test_every_token_the_issuer_granted_and_every_report_read_is_audited(run: Run, settings: Settings) -> None:
    """The issuer process and report, as `make demo` runs them: each grant and each read one FHIR AuditEvent."""
    hospital = run.outcome.hospital_of(run.outcome.own_reports()[0])
    token_for(settings, hospital)
    access = event_type("access", "audited")

    def is_access(record: ConsumerRecord) -> bool:
        return decode_headers(record.headers).get(CE_TYPE) == access

    async def access_events() -> list[AccessEvent]:
        reader = await TopicReader(settings, Topic.AUDIT).open()
        try:
            await reader.wait_for(lambda r: is_access(r) and b'"aimass/issuer"' in r.value, timeout=20)
            await reader.wait_for(lambda r: is_access(r) and b'"aimass/report"' in r.value, timeout=20)
            return [AccessEvent.model_validate_json(r.value) for r in reader.records if is_access(r)]
        finally:
            await reader.close()

    events = asyncio.run(access_events())
    grants = [e for e in events if e.type.code == "110114" and e.outcome == "0"]
    clients = {e.agent[0].who.identifier.value for e in grants}
    assert f"{hospital}-backend" in clients and "ops-monitoring" in clients  # the demo's operator token too
    assert all(e.source.observer.display == "aimass/issuer" for e in grants)
    reads = [e for e in events if e.type.code == "rest" and e.outcome == "0" and e.action == "R"]
    assert reads and all(e.source.observer.display == "aimass/report" for e in reads)


def test_each_front_door_was_used_and_answered(run: Run) -> None:
    """The demo's last act (services/cli/doors.py): a failing door fails the run above; here, what each answered."""
    assert run.doors is not None
    lines = dict(
        line.split(maxsplit=1) for line in (ln.strip().replace("FHIR REST", "FHIR-REST") for ln in run.doors.lines)
    )
    assert set(lines) == {"MLLP", "FHIR-REST", "predict", "rest-hook", "CDS"}
    assert "ORU^R01" in lines["MLLP"] and "→ AA" in lines["MLLP"]
    assert "→ 202, event fhir/" in lines["FHIR-REST"]
    assert "5 models answered" in lines["predict"]
    assert lines["rest-hook"].startswith("2 RiskAssessments")
    assert "patient-view" in lines["CDS"] and "risk of" in lines["CDS"]
