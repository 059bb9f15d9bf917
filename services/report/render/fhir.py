"""FHIR R4 output: a ``RiskAssessment``, the ``DiagnosticReport`` that presents it, and a transaction ``Bundle`` of
both an EHR can post to its FHIR base. Everything emitted is validated with ``fhir.resources.R4B`` first.

The RiskAssessment's ``basis`` cites the inputs the models scored as contained Observations (this record's values,
in the task's codes and UCUM units). R4's DiagnosticReport has no element that references a RiskAssessment, so the
report points at it with the core ``workflow-supportingInfo`` extension; ``presentedForm`` links the HTML and PDF.
"""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.riskassessment import RiskAssessment

from services.report.inputs import display_unit
from services.report.view import InputLine, ReportView
from shared.schemas.records import LOINC

UCUM = "http://unitsofmeasure.org"
TASK_SYSTEM = "urn:aimass:task"
REPORT_SYSTEM = "urn:aimass:report"
METHOD_SYSTEM = "urn:aimass:fusion-method"
SUPPORTING_INFO = "http://hl7.org/fhir/StructureDefinition/workflow-supportingInfo"
DEMOGRAPHIC_CODES = {"age_years": ("30525-0", "Age"), "sex": ("46098-0", "Sex")}

FhirJson = dict[str, Any]


def _validated(model: type[Resource], resource: FhirJson) -> FhirJson:
    """``resource`` as ``fhir.resources.R4B`` serializes it; a ``ValidationError`` if it is not valid R4."""
    return json.loads(model.model_validate(resource).model_dump_json(exclude_none=True))


def _status(view: ReportView) -> str:
    return "preliminary" if view.needs_review else "final"


def _patient(view: ReportView) -> FhirJson:
    return {"reference": f"Patient/{view.patient}", "display": f"pseudonym {view.patient}"}


def _value(line: InputLine) -> FhirJson:
    if line.kind == "numeric":
        unit = line.unit or "1"
        return {
            "valueQuantity": {"value": line.value, "unit": display_unit(unit) or unit, "system": UCUM, "code": unit}
        }
    if line.kind == "flag" and line.demographic is None:
        return {"valueBoolean": bool(line.value)}
    if line.kind == "category" and line.category:
        return {"valueCodeableConcept": {"coding": [{"system": line.system, "code": line.category}], "text": line.text}}
    return {"valueString": line.text}


def _observation(view: ReportView, line: InputLine, index: int) -> FhirJson:
    if line.demographic is not None:
        code, display = DEMOGRAPHIC_CODES[line.demographic]
        coding = {"system": LOINC, "code": code, "display": display}
    else:
        coding = {"system": line.system, "code": line.code, "display": line.label}
    return {
        "resourceType": "Observation",
        "id": f"input-{index}",
        "status": "final",
        "code": {"coding": [coding], "text": line.label},
        "subject": _patient(view),
        **_value(line),
    }


def _code(view: ReportView) -> FhirJson:
    return {"coding": [{"system": TASK_SYSTEM, "code": view.task, "display": view.task_title}], "text": view.task_title}


def risk_assessment(view: ReportView) -> FhirJson:
    measured = [(i, line) for i, line in enumerate(view.inputs, start=1) if line.text is not None]
    models = ", ".join(f"{view.task}/{m.site}/{m.version} (weight {m.weight:.2f})" for m in view.models)
    notes = [{"text": view.disclaimer}] + [{"text": f"Needs review: {r}"} for r in view.review_reasons]
    resource = {
        "resourceType": "RiskAssessment",
        "id": view.report_id,
        "identifier": [{"system": REPORT_SYSTEM, "value": view.report_id}],
        "status": _status(view),
        "code": _code(view),
        "method": {
            "coding": [{"system": METHOD_SYSTEM, "code": view.method}],
            "text": f"{view.method.replace('_', ' ')} of {models}",
        },
        "subject": _patient(view),
        "occurrenceDateTime": view.created_at.isoformat(),
        "basis": [{"reference": f"#input-{i}", "display": line.label} for i, line in measured],
        "prediction": [
            {
                "outcome": {
                    "coding": [
                        {"system": TASK_SYSTEM, "code": f"{view.task}:positive", "display": view.positive_label}
                    ],
                    "text": view.positive_label,
                },
                "probabilityDecimal": round(view.probability, 6),
                "rationale": view.summary,
            }
        ],
        "note": notes,
        "contained": [_observation(view, line, i) for i, line in measured],
    }
    return _validated(RiskAssessment, {k: v for k, v in resource.items() if v != []})


def diagnostic_report(view: ReportView, diagnostic_report_id: str, url: str) -> FhirJson:
    resource = {
        "resourceType": "DiagnosticReport",
        "id": diagnostic_report_id,
        "identifier": [{"system": REPORT_SYSTEM, "value": view.report_id}],
        "extension": [
            {
                "url": SUPPORTING_INFO,
                "valueReference": {"reference": f"RiskAssessment/{view.report_id}", "type": "RiskAssessment"},
            }
        ],
        "status": _status(view),
        "code": {**_code(view), "text": f"AI Mass risk report: {view.task_title}"},
        "subject": _patient(view),
        "effectiveDateTime": view.created_at.isoformat(),
        "issued": view.created_at.isoformat(),
        "conclusion": f"{view.summary}. {view.disclaimer}",
        "presentedForm": [
            {"contentType": "text/html", "url": url, "title": "Report (HTML)"},
            {"contentType": "application/pdf", "url": f"{url}?format=pdf", "title": "Report (PDF)"},
        ],
    }
    return _validated(DiagnosticReport, resource)


def transaction(resources: list[FhirJson]) -> FhirJson:
    """A transaction Bundle that creates or updates each resource under its own id (PUT), so re-importing the same
    report replaces it rather than adding a copy.

    ``resources`` come from ``risk_assessment`` / ``diagnostic_report``, validated already: the Bundle is validated
    with its requests and a placeholder resource per entry, then the resources are put in. Validating them again
    inside the Bundle gives the same JSON and cost more than everything else in a report (see docs/report.md).
    """
    requests = [{"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"} for r in resources]
    placeholder = {"resourceType": "Basic", "code": {"text": "placeholder"}}
    bundle = _validated(
        Bundle,
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": placeholder, "request": q} for q in requests],
        },
    )
    bundle["entry"] = [
        {**entry, "resource": resource} for entry, resource in zip(bundle["entry"], resources, strict=True)
    ]
    return bundle
