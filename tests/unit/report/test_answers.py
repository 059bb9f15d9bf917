"""The questioning page's answer as the record written back: what clean makes of it is the latest result's inputs
with the answer over them, for the patient the reference names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.clean.features import task_features
from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.answers import answered_record, features_of, group_of, parse_answer, recorded_answers
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from shared.metrics import ServiceMetrics
from shared.schemas import CanonicalRecord, Demographics
from shared.schemas.predictions import FusedPrediction
from shared.settings import Settings
from shared.tasks import load_tasks

WHEN = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def clean_features(record, task) -> list[float | None]:
    """The record as ingest would hand it on (its demographics and observations) through clean's feature code."""
    canonical = CanonicalRecord(
        record_id="r",
        patient="p",
        hospital="switzerland",
        received_at=WHEN,
        source_format="json",
        demographics=Demographics(age_years=record.age_years, sex=record.sex),
        observations=record.observations,
    )
    return task_features(canonical, task).features.values


def test_an_answer_adds_one_input_and_clean_reads_every_input_back(
    fresh_settings: Settings, swiss_fused: FusedPrediction
) -> None:
    task = load_tasks()["heart_disease"]
    store = FileReportStore.under(fresh_settings)
    reporter = Reporter(
        load_tasks(),
        RegistryModels(fresh_settings),
        store,
        ReportMetrics(ServiceMetrics("report").registry),
        "http://report.test",
    )
    view = store.view(reporter.report(swiss_fused, WHEN).report_id)
    assert view is not None
    before = recorded_answers(task, view.inputs)
    assert "major_vessels" not in before  # the Swiss record lacks it
    assert clean_features(answered_record(task, view, {}, "ref", WHEN), task) == features_of(task, before)
    answers = {
        "major_vessels": parse_answer(group_of(task, "major_vessels"), "2"),
        "thallium-scan": parse_answer(group_of(task, "thallium-scan"), "thallium-scan:reversable defect"),
        "exercise_angina": parse_answer(group_of(task, "exercise_angina"), "no"),
    }
    record = answered_record(task, view, answers, "aimass-patient:p.seal", WHEN)
    assert record.patient_id == "aimass-patient:p.seal" and record.recorded_at == WHEN
    got = clean_features(record, task)
    assert got == features_of(task, {**before, **answers})
    names = task.feature_names
    assert got[names.index("major_vessels")] == 2.0
    assert got[names.index("thallium_reversable_defect")] == 1.0 and got[names.index("thallium_normal")] == 0.0
    assert got[names.index("exercise_angina")] == 0.0
    assert got[names.index("age")] == swiss_fused.features[names.index("age")]


@pytest.mark.parametrize(
    ("key", "text", "says"),
    [
        ("major_vessels", "many", "a number is needed"),
        ("major_vessels", "7", "outside 0-3"),
        ("exercise_angina", "perhaps", "yes or no"),
        ("thallium-scan", "thallium-scan:glowing", "choose one of normal, fixed defect, reversable defect, other"),
    ],
)
def test_an_answer_outside_what_the_input_takes_says_what_it_takes(key: str, text: str, says: str) -> None:
    group = group_of(load_tasks()["heart_disease"], key)
    assert group is not None
    with pytest.raises(ValueError, match=says):
        parse_answer(group, text)
