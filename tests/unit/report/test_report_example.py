"""research/report_example.py (the renderer of docs/images/report.png) runs, and what it writes is the report.

It trains its models through tests/support/factories/report.py (cached per process; the other report tests share
three of the four): 6–10 s alone, nearly all of it torch's first training and ONNX export, about 1 s in a run where
other tests have already trained with torch.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from research.report_example import FILES, SITES, main


def test_the_example_writes_the_html_pdf_and_fhir_of_one_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "example"
    message = main(out)

    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert capsys.readouterr().out.strip() == message.summary
    probability = message.risk_assessment["prediction"][0]["probabilityDecimal"]
    risk = f"{probability:.0%}"
    assert message.summary.startswith(f"heart_disease: {risk} risk of coronary artery disease")

    html = (out / "report.html").read_text()
    for content in (
        message.report_id,
        message.patient,
        "va-long-beach",
        f'aria-label="risk {risk}"',  # the gauge
        f"<strong>{probability:.1%}</strong>",
        "risk of coronary artery disease",
    ):
        assert content in html, content
    for site in SITES:  # every model that contributed is listed with its weight
        assert f">{site}<" in html, site
    assert "What drove the result" in html

    pdf = " ".join(page.extract_text() for page in PdfReader(io.BytesIO((out / "report.pdf").read_bytes())).pages)
    assert risk in pdf and message.patient in pdf

    bundle = json.loads((out / "fhir.json").read_text())
    assert bundle["resourceType"] == "Bundle"
    resources = {entry["resource"]["resourceType"]: entry["resource"] for entry in bundle["entry"]}
    assert set(resources) == {"RiskAssessment", "DiagnosticReport"}
    assert resources["RiskAssessment"]["prediction"] == message.risk_assessment["prediction"]
