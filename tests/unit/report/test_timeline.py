"""The timeline's pure side on real reports (the Reporter on real models, three Cleveland records made one patient's
history a month apart): the trend's order, what changed and the attribution difference, the reference ranges, the
risk bands, the search's filters, and the FHIR history Bundle."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from services.report.render.history import PSEUDONYM_SYSTEM, history_bundle
from services.report.render.timeline_html import render_timeline_html
from services.report.render.timeline_pdf import render_timeline_pdf
from services.report.timeline import (
    Search,
    attribution_difference,
    build_timeline,
    out_of_range,
    references_of,
    risk_band,
    search_patients,
)
from services.report.view import Driver, ReportView
from shared.metrics import ServiceMetrics
from shared.settings import Settings
from shared.tasks import FeatureSpec, load_tasks
from tests.support.factories.report import fused_for, record_from
from tests.unit.report.conftest import SITES

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
MONTH = timedelta(days=30)


class History:
    """One patient's three heart results (Cleveland records 0, 1, 2 under record 0's pseudonym), stored."""

    def __init__(self, settings: Settings) -> None:
        self.store = FileReportStore.under(settings)
        reporter = Reporter(
            load_tasks(),
            RegistryModels(settings),
            self.store,
            ReportMetrics(ServiceMetrics("report").registry),
            "http://report.test",
        )
        self.records = [record_from("cleveland", i) for i in range(3)]
        self.patient = self.records[0].record.patient
        self.report_ids = []
        for month, record in enumerate(self.records):
            fused = fused_for(record, SITES).model_copy(update={"patient": self.patient})
            self.report_ids.append(reporter.report(fused, WHEN + month * MONTH).report_id)
        self.views: list[ReportView] = [self.store.view(i) for i in self.report_ids]  # type: ignore[misc]


@pytest.fixture
def history(fresh_settings: Settings) -> History:
    return History(fresh_settings)


def test_the_trend_is_in_time_order_with_each_result_s_review_flags(history: History) -> None:
    shuffled = [history.views[2], history.views[0], history.views[1]]
    timeline = build_timeline(history.patient, shuffled, references_of(load_tasks()))
    [task] = timeline.tasks
    assert task.task == "heart_disease" and timeline.hospitals == ["cleveland"]
    assert [r.report_id for r in task.results] == history.report_ids
    assert [r.created_at for r in task.results] == [WHEN, WHEN + MONTH, WHEN + 2 * MONTH]
    for result, view in zip(task.results, history.views, strict=True):
        assert (result.probability, result.label, result.needs_review) == (
            view.probability,
            view.label,
            view.needs_review,
        )
        assert result.review_reasons == view.review_reasons and result.quality_flags == view.quality_flags
    assert task.latest.report_id == history.report_ids[-1]
    assert [(c.before, c.after) for c in task.changes] == list(pairwise(history.report_ids))


def test_what_changed_names_the_inputs_whose_values_differ_and_the_attribution_difference(history: History) -> None:
    old, new = history.views[0], history.views[1]
    [task] = build_timeline(history.patient, history.views, {}).tasks
    first = task.changes[0]
    assert first.risk_change == pytest.approx(new.probability - old.probability)
    changed = {c.label: (c.before, c.after) for c in first.inputs}
    # Cleveland records 0 and 1 of the UCI data: BP 145 -> 160 mmHg, cholesterol 233 -> 286 mg/dL, same sex and ECG.
    assert changed["Resting systolic BP"] == ("145 mmHg", "160 mmHg")
    assert changed["Cholesterol"] == ("233 mg/dL", "286 mg/dL")
    assert "Sex" not in changed and "Resting ECG" not in changed
    old_delta = {d.label: d.delta for d in old.drivers}
    new_delta = {d.label: d.delta for d in new.drivers}
    assert first.attribution, "both results have occlusion drivers"
    for d in first.attribution:
        assert d.before == old_delta.get(d.label, 0.0) and d.after == new_delta.get(d.label, 0.0)
        assert d.difference == pytest.approx(d.after - d.before)
    sizes = [abs(d.difference) for d in first.attribution]
    assert sizes == sorted(sizes, reverse=True)
    assert {d.label for d in first.attribution} == set(old_delta) | set(new_delta)


def test_the_attribution_difference_in_numbers(history: History) -> None:
    old = history.views[0].model_copy(
        update={
            "drivers": [
                Driver(label="Cholesterol", value="233 mg/dL", delta=0.10),
                Driver(label="Age", value="63", delta=-0.02),
            ]
        }
    )
    new = history.views[1].model_copy(
        update={
            "drivers": [
                Driver(label="Cholesterol", value="286 mg/dL", delta=0.04),
                Driver(label="Thallium scan", value="normal", delta=0.09),
            ]
        }
    )
    assert [
        (d.label, round(d.before, 4), round(d.after, 4), round(d.difference, 4))
        for d in attribution_difference(old, new)
    ] == [
        ("Thallium scan", 0.0, 0.09, 0.09),
        ("Cholesterol", 0.10, 0.04, -0.06),
        ("Age", -0.02, 0.0, 0.02),
    ]


def test_numeric_inputs_are_series_against_their_reference_and_categories_show_their_changes(history: History) -> None:
    [task] = build_timeline(history.patient, history.views, references_of(load_tasks())).tasks
    series = {s.label: s for s in task.inputs}
    bp = series["Resting systolic BP"]
    assert bp.reference == (90.0, 120.0) and bp.unit == "mm[Hg]"
    assert [p.value for p in bp.points] == [145.0, 160.0, 120.0]
    assert [p.out_of_range for p in bp.points] == ["high", "high", "high"]  # 120 is no longer "normal" (< 120)
    cholesterol = series["Cholesterol"]
    assert cholesterol.reference == (None, 200.0) and all(p.out_of_range == "high" for p in cholesterol.points)
    assert series["Max heart rate"].reference is None and all(
        p.out_of_range is None for p in series["Max heart rate"].points
    )
    assert [p.text for p in series["Sex"].points] == ["male"]  # unchanged over the three results: shown once
    assert [p.text for p in series["Chest pain type"].points] == ["typical angina", "asymptomatic"]
    page = render_timeline_html(build_timeline(history.patient, history.views, references_of(load_tasks())))
    assert b'class="out"' in page and b"90\xe2\x80\x93&lt; 120 mmHg" in page


def test_a_result_that_lacks_inputs_links_to_the_questioning_page_keeping_a_signed_link(
    fresh_settings: Settings,
) -> None:
    store = FileReportStore.under(fresh_settings)
    reporter = Reporter(
        load_tasks(), RegistryModels(fresh_settings), store, ReportMetrics(ServiceMetrics("report").registry), "x"
    )
    record = record_from("hungary", 0)
    view = store.view(reporter.report(fused_for(record, SITES), WHEN).report_id)
    assert view is not None and view.not_measured
    timeline = build_timeline(view.patient, [view], references_of(load_tasks()))
    page = render_timeline_html(timeline, keep="exp=1&sig=abc").decode()
    questions = f"/patients/{view.patient}/questions/heart_disease"
    assert f'id="ask-heart_disease" href="{questions}?exp=1&amp;sig=abc"' in page
    assert f'href="{questions}?exp=1&amp;sig=abc&amp;lang=zh"' in page and "补充缺失信息" in page
    full = store.view(reporter.report(fused_for(record_from("cleveland", 0), SITES), WHEN).report_id)
    assert full is not None and not full.not_measured
    complete = render_timeline_html(build_timeline(full.patient, [full], references_of(load_tasks()))).decode()
    assert "/questions/" not in complete, "nothing to ask when every input is recorded"


def test_out_of_range_reads_a_half_open_range_and_open_ends() -> None:
    assert out_of_range(85, (90, 120)) == "low"
    assert out_of_range(90, (90, 120)) is None and out_of_range(119.9, (90, 120)) is None
    assert out_of_range(120, (90, 120)) == "high"
    assert out_of_range(20, (None, 200)) is None and out_of_range(200, (None, 200)) == "high"
    assert out_of_range(None, (90, 120)) is None and out_of_range(500, None) is None
    with pytest.raises(ValidationError, match="reference"):
        FeatureSpec(name="angina", code={"system": "s", "code": "c"}, equals="yes", reference=(0, 1))
    with pytest.raises(ValidationError, match="low < high"):
        FeatureSpec(name="bp", code={"system": "s", "code": "c"}, unit="mm[Hg]", reference=(120, 90))


def test_risk_bands() -> None:
    assert [risk_band(p) for p in (0.0, 0.1499, 0.15, 0.4999, 0.5, 1.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


def test_the_search_filters_results_and_lists_patients_by_their_latest_match(history: History) -> None:
    everyone = history.store.patients()
    assert list(everyone) == [history.patient]
    assert [e.report_id for e in everyone[history.patient]] == history.report_ids[::-1]
    assert history.store.patients("hungary") == {}
    probabilities = [v.probability for v in history.views]
    [hit] = search_patients(everyone, Search(hospital="cleveland"))
    assert hit.patient == history.patient and hit.latest == WHEN + 2 * MONTH and len(hit.results) == 3
    in_february = search_patients(everyone, Search(start=date(2026, 2, 1), end=date(2026, 2, 28)))
    assert [r.report_id for r in in_february[0].results] == [history.report_ids[1]]
    reviewed = search_patients(everyone, Search(needs_review=True))
    assert {r.report_id for h in reviewed for r in h.results} == {v.report_id for v in history.views if v.needs_review}
    high = search_patients(everyone, Search(band="high"))
    assert {r.report_id for h in high for r in h.results} == {
        v.report_id for v, p in zip(history.views, probabilities, strict=True) if p >= 0.5
    }
    assert search_patients(everyone, Search(task="breast_cancer")) == []
    assert search_patients(everyone, Search(hospital="hungary")) == []


def test_a_search_query_is_read_or_refused_with_what_to_change() -> None:
    search = Search.from_query({"task": "heart_disease", "needs_review": "false", "from": "2026-01-01", "band": "low"})
    assert search == Search(task="heart_disease", needs_review=False, start=date(2026, 1, 1), band="low")
    assert search.as_details() == {
        "task": "heart_disease",
        "needs_review": "false",
        "from": "2026-01-01",
        "band": "low",
    }
    for bad, why in (
        ({"needs_review": "maybe"}, "true or false"),
        ({"band": "extreme"}, "low, medium or high"),
        ({"from": "05/01/2026"}, "YYYY-MM-DD"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "after"),
    ):
        with pytest.raises(ValueError, match=why):
            Search.from_query(bad)


def test_the_fhir_history_holds_every_report_s_resources_and_no_identifier_but_the_pseudonym(history: History) -> None:
    stored = [history.store.read(i, "fhir") for i in history.report_ids]
    bundle = history_bundle(history.patient, stored, "2026-04-01T00:00:00+00:00")  # type: ignore[arg-type]
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    resources = [e["resource"] for e in bundle["entry"]]
    assert resources[0] == {
        "resourceType": "Patient",
        "id": history.patient,
        "identifier": [{"system": PSEUDONYM_SYSTEM, "value": history.patient}],
    }
    for report_id, body in zip(history.report_ids, stored, strict=True):
        transaction = [e["resource"] for e in json.loads(body)["entry"]]  # type: ignore[arg-type]
        assert transaction and all(r in resources for r in transaction)  # as stored, unchanged
        assert {r["resourceType"] for r in resources if report_id in json.dumps(r.get("identifier"))} == {
            "RiskAssessment",
            "DiagnosticReport",
        }
    assert len(resources) == 1 + 2 * len(history.report_ids)
    text = json.dumps(bundle)
    for record in history.records:  # the hospital's MRN and encounter never leave it
        assert str(record.raw["patient_id"]) not in text and str(record.raw["encounter_id"]) not in text
    assert {r["subject"]["reference"] for r in resources[1:]} == {f"Patient/{history.patient}"}


def test_the_pdf_holds_the_timeline(history: History) -> None:
    timeline = build_timeline(history.patient, history.views, references_of(load_tasks()))
    pdf = render_timeline_pdf(timeline, WHEN)
    assert pdf.startswith(b"%PDF") and len(pdf) > 3000
    assert render_timeline_pdf(timeline, WHEN) == pdf  # invariant: the same timeline, the same bytes
