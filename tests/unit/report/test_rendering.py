"""The view model and its three renderings: HTML a person reads, a PDF that parses, FHIR R4 that validates."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from html import unescape

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.riskassessment import RiskAssessment
from pypdf import PdfReader

from services.report.adapters.registry_models import RegistryModels
from services.report.attribution import occlusion
from services.report.inputs import input_groups
from services.report.render.fhir import diagnostic_report, risk_assessment, transaction
from services.report.render.html import render_html
from services.report.render.pdf import render_pdf
from services.report.view import DISCLAIMER, ReportView, build_view
from shared.errors import RejectedInput
from shared.schemas.predictions import FusedPrediction
from shared.schemas.records import QualityFlag
from shared.settings import Settings
from tests.support.factories.report import fused_for, heart_records, heart_task
from tests.unit.report.conftest import SITES

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def view_of(fused: FusedPrediction, settings: Settings) -> ReportView:
    models = RegistryModels(settings)
    ref = max(fused.contributions, key=lambda c: c.weight).model
    score = models.scorer(ref)
    assert score is not None
    return build_view(
        "r-1",
        fused,
        heart_task(),
        WHEN,
        models.card,
        (ref, occlusion(score, fused.features, input_groups(heart_task()))),
    )


@pytest.fixture
def view(swiss_fused: FusedPrediction, registry_settings: Settings) -> ReportView:
    return view_of(swiss_fused, registry_settings)


def test_view_lists_models_by_weight_with_their_cards(view: ReportView, swiss_fused: FusedPrediction) -> None:
    assert [m.weight for m in view.models] == sorted((c.weight for c in swiss_fused.contributions), reverse=True)
    assert all(m.auc is not None and 0.5 < m.auc <= 1 for m in view.models)
    assert view.attribution_model is not None and view.attribution_model.site == view.models[0].site
    assert 0 < len(view.drivers) <= 8
    assert "Cholesterol" in view.not_measured
    assert view.summary.startswith(f"heart_disease: {swiss_fused.probability:.0%} risk of coronary artery disease")


def test_a_feature_vector_of_another_length_is_rejected(swiss_fused: FusedPrediction) -> None:
    short = swiss_fused.model_copy(update={"features": swiss_fused.features[:5]})
    with pytest.raises(RejectedInput, match="5 values for task 'heart_disease'"):
        build_view("r", short, heart_task(), WHEN, lambda _: None, None)


def test_without_features_the_report_has_no_drivers(swiss_fused: FusedPrediction) -> None:
    view = build_view("r", swiss_fused.model_copy(update={"features": []}), heart_task(), WHEN, lambda _: None, None)
    assert view.drivers == [] and view.inputs == [] and view.attribution is None
    assert "No attribution" in render_html(view).decode()


def test_html_shows_every_part_of_the_report(view: ReportView) -> None:
    html = render_html(view).decode()
    for expected in (
        view.patient,
        view.hospital,
        "2026-01-05 09:30",
        "heart_disease",
        f"{view.probability:.0%}",
        DISCLAIMER,
        '<svg class="gauge"',
        "Data quality",
        "implausible",
        view.drivers[0].label,
    ):
        assert expected in unescape(html), expected
    for model in view.models:
        assert f"heart_disease/{model.site}/{model.version}" in html
        assert f"{model.weight:.2f}" in html
    assert "http" not in re.sub(r'xmlns="http://www.w3.org/2000/svg"|http://loinc.org', "", html)  # self-contained


def test_needs_review_reasons_are_shown(view: ReportView) -> None:
    flagged = view.model_copy(update={"needs_review": True, "review_reasons": ["only 2 of 3 expected models"]})
    assert "Needs review by a clinician" in render_html(flagged).decode()
    assert "Needs review" not in render_html(view.model_copy(update={"needs_review": False})).decode()


def test_html_escapes_what_it_did_not_write(view: ReportView) -> None:
    hostile = view.model_copy(
        update={"quality_flags": [QualityFlag(kind="missing", field="x", detail="<script>alert(1)</script>")]}
    )
    html = render_html(hostile).decode()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_pdf_parses_and_carries_the_risk(view: ReportView) -> None:
    pdf = render_pdf(view)
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert f"{view.probability * 100:.1f}%" in text
    assert view.patient in text and "does not replace" in text
    assert render_pdf(view) == pdf  # deterministic: a re-rendered report is byte-identical


def test_risk_assessment_is_valid_r4_and_cites_its_basis(view: ReportView) -> None:
    resource = risk_assessment(view)
    RiskAssessment.model_validate(resource)
    assert resource["subject"]["reference"] == f"Patient/{view.patient}"
    assert resource["prediction"][0]["probabilityDecimal"] == pytest.approx(view.probability, abs=1e-6)
    contained = {c["id"]: c for c in resource["contained"]}
    assert {b["reference"].lstrip("#") for b in resource["basis"]} == set(contained)
    assert len(contained) == sum(1 for line in view.inputs if line.text is not None)
    bp = next(c for c in contained.values() if c["code"]["coding"][0]["code"] == "8480-6")
    assert bp["valueQuantity"]["code"] == "mm[Hg]" and bp["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    for model in view.models:
        assert f"{model.site}/{model.version}" in resource["method"]["text"]


def test_diagnostic_report_wraps_the_assessment(view: ReportView) -> None:
    report = diagnostic_report(view, "dr-1", "http://host/reports/r-1")
    DiagnosticReport.model_validate(report)
    assert report["extension"][0]["valueReference"]["reference"] == "RiskAssessment/r-1"
    assert {f["contentType"] for f in report["presentedForm"]} == {"text/html", "application/pdf"}
    assert report["status"] == ("preliminary" if view.needs_review else "final")
    bundle = transaction([risk_assessment(view), report])
    Bundle.model_validate(bundle)
    assert [e["request"]["url"] for e in bundle["entry"]] == ["RiskAssessment/r-1", "DiagnosticReport/dr-1"]
    json.dumps(bundle)  # plain JSON all the way down


def test_the_bundle_is_what_validating_it_whole_gives(
    view: ReportView, swiss_fused: FusedPrediction, registry_settings: Settings
) -> None:
    """``transaction`` validates its shell and puts in resources validated already: the same JSON, to the byte,
    as validating the whole Bundle again (which cost more than the rest of a report)."""
    others = [view] + [view_of(fused_for(record, SITES), registry_settings) for record in heart_records()[::150]]
    for each in others:
        resources = [risk_assessment(each), diagnostic_report(each, "dr-1", "http://host/reports/r-1")]
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
        ]
        whole = Bundle.model_validate({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        assert json.dumps(transaction(resources), indent=1) == json.dumps(
            json.loads(whole.model_dump_json(exclude_none=True)), indent=1
        )


def test_influences_beyond_the_table_are_counted(view: ReportView) -> None:
    measured = sum(1 for line in view.inputs if line.text is not None)
    assert view.drivers_not_shown == measured - len(view.drivers)


def test_points_never_read_minus_zero() -> None:
    from services.report.render.pictures import points

    assert points(-0.00004) == "0.0 pts" and points(0.1123) == "+11.2 pts" and points(-0.05) == "-5.0 pts"
