"""A patient's history as one FHIR R4 ``Bundle`` of type ``collection`` (``GET /patients/{p}/export?format=fhir``):
a ``Patient`` carrying only its pseudonym, then each report's ``RiskAssessment`` and ``DiagnosticReport`` exactly as
they were stored (taken out of the report's transaction Bundle), oldest first. Validated with ``fhir.resources.R4B``
whole: an export is rare, and an EHR importing it must be able to trust every entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fhir.resources.R4B.bundle import Bundle

from services.report.render.fhir import FhirJson

PSEUDONYM_SYSTEM = "urn:aimass:pseudonym"
EXPORTED = ("RiskAssessment", "DiagnosticReport")


def patient_resource(pseudonym: str) -> FhirJson:
    """The patient as the platform knows it: the pseudonym, no name, MRN or demographics."""
    return {
        "resourceType": "Patient",
        "id": pseudonym,
        "identifier": [{"system": PSEUDONYM_SYSTEM, "value": pseudonym}],
    }


def history_bundle(pseudonym: str, transactions: Sequence[bytes], timestamp: str) -> FhirJson:
    """``transactions``: each report's stored transaction Bundle (JSON), in the order they should appear."""
    resources = [patient_resource(pseudonym)]
    for stored in transactions:
        resources += [e["resource"] for e in json.loads(stored)["entry"] if e["resource"]["resourceType"] in EXPORTED]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": timestamp,
        # No fullUrl: the resources reference each other as ``Patient/<pseudonym>``, relative to whichever FHIR
        # base imports them; an absolute URL here would name a server that does not serve them.
        "entry": [{"resource": r} for r in resources],
    }
    return json.loads(Bundle.model_validate(bundle).model_dump_json(exclude_none=True))
