"""The demo scenario's pure parts: the held-out split, the messages per format, and the outcome bookkeeping."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from services.cli.scenario import plan
from services.cli.scenario.heart import records_by_hospital
from services.cli.scenario.observed import INGEST_AUDIT, Observed
from shared.schemas import CleanRecord
from shared.schemas.audit import AuditEvent
from shared.schemas.models import ModelRef
from shared.schemas.predictions import Contribution, FusedPrediction, Prediction
from shared.schemas.records import TaskFeatures
from shared.schemas.reports import ReportMessage
from shared.topics import CE_ID, CE_TYPE, DLQ_ERROR, DLQ_SERVICE, Topic


@pytest.fixture(scope="module")
def documents() -> dict[str, list[dict]]:
    return records_by_hospital(60, start=datetime(2026, 3, 1, tzinfo=UTC), spread=True)


@pytest.fixture(scope="module")
def scenario(documents: dict[str, list[dict]]) -> plan.Scenario:
    return plan.build(documents, {"CT_small.dcm": b"DICM-bytes"})


def test_the_held_out_fifth_is_stratified_disjoint_and_stable(documents: dict[str, list[dict]]) -> None:
    for hospital, docs in documents.items():
        training, held_out = plan.held_out_split(docs)
        ids = [d["patient_id"] for d in training], [d["patient_id"] for d in held_out]
        assert not set(ids[0]) & set(ids[1]) and len(ids[0]) + len(ids[1]) == len(docs)
        assert abs(len(held_out) - len(docs) / 5) <= 2, hospital
        positives = sum(map(plan.diagnosed, docs))
        if 2 <= positives <= len(docs) - 2:  # both classes present: both held out
            assert {plan.diagnosed(d) for d in held_out} == {True, False}, hospital
        assert [d["patient_id"] for d in plan.held_out_split(docs)[1]] == ids[1], "same split every run"


def test_each_hospital_sends_its_own_format_and_va_sends_csv_files_of_several_rows(
    scenario: plan.Scenario, documents
) -> None:
    formats = {(m.hospital, m.format) for m in [*scenario.training, *scenario.held_out]}
    assert formats == {("cleveland", "fhir"), ("hungary", "hl7v2"), ("va-long-beach", "csv"), ("switzerland", "json")}
    va = [m for m in [*scenario.training, *scenario.held_out] if m.hospital == "va-long-beach"]
    assert sum(m.patients for m in va) == len(documents["va-long-beach"])
    for message in va:
        rows = list(csv.DictReader(io.StringIO(message.body.decode())))
        assert len(rows) == message.patients <= plan.CSV_ROWS_PER_FILE
    assert len({m.ce_id for m in scenario.all()}) == len(list(scenario.all())), "a fresh ce_id per message"
    assert [m.format for m in scenario.imaging] == ["dicom"]


def test_identifiers_cover_names_mrns_phones_and_birth_dates(scenario: plan.Scenario, documents) -> None:
    cleveland = documents["cleveland"][0]
    assert cleveland["patient_id"] in scenario.identifiers
    assert documents["switzerland"][0]["patient_id"] in scenario.identifiers
    first_bundle = next(m for m in scenario.training + scenario.held_out if m.hospital == "cleveland")
    assert any(
        name in first_bundle.body.decode()
        for name in scenario.identifiers
        if " " not in name and not name[0].isdigit() and "-" not in name
    ), "the bundle carries a synthetic name"


def _clean(record_id: str, hospital: str, label: float) -> bytes:
    record = CleanRecord(
        record_id=record_id,
        patient=f"p-{record_id}",
        hospital=hospital,
        received_at=datetime(2026, 3, 1, tzinfo=UTC),
        source_format="json",
        features={"heart_disease": TaskFeatures(names=["age"], values=[50.0], label=label)},
    )
    return record.model_dump_json().encode()


def _audit(message: plan.Message, record_ids: list[str]) -> bytes:
    return (
        AuditEvent(
            audit_id=f"a-{message.ce_id}",
            service="ingest",
            outcome="ingested",
            hospital=message.hospital,
            message_id=message.ce_id,
            bytes=len(message.body),
            received_at=datetime.now(UTC),
            records=len(record_ids),
            record_ids=record_ids,
        )
        .model_dump_json()
        .encode()
    )


def test_outcome_counts_only_this_runs_records_once_and_scores_only_released_models(scenario) -> None:
    outcome = Observed(scenario)
    outcome.released_versions = {("cleveland", "v2"), ("hungary", "v1")}
    held = [m for m in scenario.held_out if m.hospital in ("cleveland", "hungary")][:4]
    for index, message in enumerate(held):
        outcome.observe(Topic.AUDIT, {CE_TYPE: INGEST_AUDIT}, _audit(message, [f"r{index}"]), 0)
        outcome.observe(Topic.RECORDS_CLEAN, {}, _clean(f"r{index}", message.hospital, float(index >= 2)), 0)
    outcome.observe(Topic.RECORDS_CLEAN, {}, _clean("someone-else", "cleveland", 1), 0)
    outcome.observe(Topic.AUDIT, {CE_TYPE: "org.aimass.access.audited.v1"}, b'{"resourceType": "AuditEvent"}', 0)
    for index in range(4):
        for site, version, p in (
            ("cleveland", "v2", index / 4),
            ("hungary", "v1", 1 - index / 4),
            ("cleveland", "v1", 0.5),
        ):
            prediction = Prediction(
                record_id=f"r{index}",
                patient="p",
                hospital="cleveland",
                task="heart_disease",
                model=ModelRef(task="heart_disease", site=site, version=version),
                probability=p,
                label=int(p > 0.5),
            )
            outcome.observe(Topic.PREDICTIONS, {}, prediction.model_dump_json().encode(), 0)
        fused = FusedPrediction(
            record_id=f"r{index}",
            patient="p",
            hospital="cleveland",
            task="heart_disease",
            probability=index / 4,
            label=0,
            method="weighted_average",
            agreement=1.0,
            contributions=[
                Contribution(
                    model=ModelRef(task="heart_disease", site="cleveland", version="v2"),
                    probability=index / 4,
                    weight=1.0,
                )
            ],
        )
        outcome.observe(Topic.PREDICTIONS_FUSED, {}, fused.model_dump_json().encode(), 0)
    assert sorted(outcome.scored()) == ["r0", "r1", "r2", "r3"]
    assert outcome.predictions["r1"] == {"cleveland": 0.25, "hungary": 0.75}, "v1 of cleveland is not this run's"
    _, rows, counts = outcome.auc_table()
    table = dict(rows)
    assert table["cleveland"]["all"] == 1.0 and table["hungary"]["all"] == 0.0 and table["fused"]["all"] == 1.0
    assert counts["all n"] == 4 and counts["all positive"] == 2


def _report(record_id: str) -> bytes:
    return (
        ReportMessage(
            report_id=f"rep-{record_id}",
            record_id=record_id,
            patient="p",
            task="heart_disease",
            summary="s",
            risk_assessment={},
            url=f"http://r/{record_id}",
        )
        .model_dump_json()
        .encode()
    )


def _fused(record_id: str, version: str = "v2") -> bytes:
    return (
        FusedPrediction(
            record_id=record_id,
            patient="p",
            hospital="cleveland",
            task="heart_disease",
            probability=0.5,
            label=0,
            method="weighted_average",
            agreement=1.0,
            contributions=[
                Contribution(
                    model=ModelRef(task="heart_disease", site="cleveland", version=version), probability=0.5, weight=1.0
                )
            ],
        )
        .model_dump_json()
        .encode()
    )


def test_a_report_read_before_its_fused_result_still_counts_and_stages_say_where_records_wait(scenario) -> None:
    outcome = Observed(scenario)
    outcome.released_versions = {("cleveland", "v2")}
    held = [m for m in scenario.held_out if m.hospital == "cleveland"][:3]
    for index, message in enumerate(held):
        outcome.observe(Topic.AUDIT, {CE_TYPE: INGEST_AUDIT}, _audit(message, [f"r{index}"]), 0)
        outcome.observe(Topic.RECORDS_CLEAN, {}, _clean(f"r{index}", "cleveland", 1.0), 0)
    prediction = Prediction(
        record_id="r0",
        patient="p",
        hospital="cleveland",
        task="heart_disease",
        model=ModelRef(task="heart_disease", site="cleveland", version="v2"),
        probability=0.5,
        label=0,
    )
    outcome.observe(Topic.PREDICTIONS, {}, prediction.model_dump_json().encode(), 0)
    outcome.observe(Topic.REPORTS, {}, _report("r0"), 2_000)  # one fetch: the reports partition came first
    outcome.observe(Topic.REPORTS, {}, _report("not-ours"), 2_000)
    assert outcome.reported() == 0, "a report counts once its fused result from this run's models is seen"
    outcome.observe(Topic.PREDICTIONS_FUSED, {}, _fused("r0"), 1_000)
    outcome.observe(Topic.PREDICTIONS_FUSED, {}, _fused("r1", version="v1"), 1_000)  # another run's model
    outcome.observe(Topic.REPORTS, {}, _report("r1"), 2_000)
    assert outcome.reported() == 1 and [r.record_id for r in outcome.own_reports()] == ["r0"]
    outcome.sent_at = {m.ce_id: 1.5 for m in held}
    assert outcome.latencies() == [0.5], "only reports of fused results from this run's models"
    assert outcome.stages() == "1 of 3 scored by all 1 models (infer), 1 fused (fuse), 2 reported (report)"


def test_dead_letters_of_this_run_count_once_and_others_are_ignored(scenario: plan.Scenario) -> None:
    outcome = Observed(scenario)
    bundle = scenario.broken[0]
    headers = {CE_ID: f"{bundle.ce_id}#entry-3", DLQ_ERROR: "FHIR Bundle.entry[3] ...", DLQ_SERVICE: "ingest"}
    outcome.observe(Topic.DEADLETTER, headers, b"", 0)
    outcome.observe(Topic.DEADLETTER, headers, b"", 0)  # re-delivered
    outcome.observe(Topic.DEADLETTER, {CE_ID: "not-ours", DLQ_ERROR: "x", DLQ_SERVICE: "ingest"}, b"", 0)
    assert [d.message for d in outcome.deadletters] == [bundle]
    assert outcome.broken_answered() == 1
