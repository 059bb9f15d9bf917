"""Canonical records for clean's tests: real UCI rows through ingest's own reading of the canonical JSON, and the
same rows re-expressed the way other hospitals send them (local codes, other units, other unit spellings)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from services.clean.cleaning import Cleaner
from services.clean.code_files import load_code_book
from services.cli.scenario.heart import canonical_record
from services.ingest.documents import envelope_of, read_document
from services.ingest.pseudonym import Pseudonymizer
from shared.schemas import CanonicalRecord
from shared.settings import PROJECT_ROOT
from shared.tasks import load_tasks

WHEN = datetime(2026, 1, 5, tzinfo=UTC)
PSEUDONYMIZE = Pseudonymizer(b"k" * 32)
CHOLESTEROL_MG_PER_MMOL = 386.65 / 10  # mg/dL per mmol/L
GLUCOSE_MG_PER_MMOL = 180.156 / 10


def cleaner() -> Cleaner:
    return Cleaner(load_tasks(), load_code_book(PROJECT_ROOT / "deploy" / "codes"))


def record_of(document: dict[str, Any], hospital: str, message_id: str = "m-1") -> CanonicalRecord:
    headers = {"ce_source": hospital, "content-type": "application/json"}
    [record] = read_document(
        json.dumps(document).encode(), headers, envelope_of(headers, message_id, WHEN), PSEUDONYMIZE, 10**6
    )
    return record


def document(**observations: tuple[str, str, float | None, str | None]) -> dict[str, Any]:
    """A minimal canonical JSON document: each observation as (system, code, value, unit)."""
    return {
        "patient_id": "P-1",
        "recorded_at": WHEN.isoformat(),
        "age_years": 54,
        "sex": "female",
        "observations": [
            {"code": {"system": system, "code": code}, "value": value, "unit": unit}
            for system, code, value, unit in observations.values()
        ],
    }


def _observation(doc: dict[str, Any], code: str) -> dict[str, Any] | None:
    return next((o for o in doc["observations"] if o["code"]["code"] == code), None)


def as_va_long_beach_sends(doc: dict[str, Any]) -> dict[str, Any]:
    """VA Long Beach: cholesterol in mmol/L under its own CSV column code, blood pressure under a local code."""
    doc = copy.deepcopy(doc)
    cholesterol = _observation(doc, "2093-3")
    if cholesterol is not None:
        cholesterol["code"] = {"system": "urn:hospital:va-long-beach:csv", "code": "chol_mmol"}
        cholesterol["value"] = cholesterol["value"] / CHOLESTEROL_MG_PER_MMOL
        cholesterol["unit"] = "mmol/L"
    pressure = _observation(doc, "8480-6")
    if pressure is not None:
        pressure["code"] = {"system": "urn:hospital:va-long-beach:csv", "code": "rest_bp"}
    return doc


def as_hungary_sends(doc: dict[str, Any]) -> dict[str, Any]:
    """Hungary (HL7 v2): local OBX-3 codes, cholesterol in mmol/L spelled 'mmol/l', pressure in 'Hgmm'."""
    doc = copy.deepcopy(doc)
    cholesterol = _observation(doc, "2093-3")
    if cholesterol is not None:
        cholesterol["code"] = {"system": "urn:hospital:hungary:lab", "code": "KOL-MMOL"}
        cholesterol["value"] = round(cholesterol["value"] / CHOLESTEROL_MG_PER_MMOL, 4)
        cholesterol["unit"] = "mmol/l"
    pressure = _observation(doc, "8480-6")
    if pressure is not None:
        pressure["code"] = {"system": "urn:hospital:hungary:vitals", "code": "RR-SYS"}
        pressure["unit"] = "Hgmm"
    return doc


SENDS = {
    "cleveland": lambda d: d,
    "hungary": as_hungary_sends,
    "va-long-beach": as_va_long_beach_sends,
    "switzerland": lambda d: d,
}


def heart_row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": 2,
        "age": 67,
        "sex": "Male",
        "dataset": "Cleveland",
        "cp": "asymptomatic",
        "trestbps": 160.0,
        "chol": 286.0,
        "fbs": False,
        "restecg": "lv hypertrophy",
        "thalch": 108.0,
        "exang": True,
        "oldpeak": 1.5,
        "slope": "flat",
        "ca": 3.0,
        "thal": "normal",
        "num": 2,
    }
    return {**row, **changes}


def heart_document(**changes: Any) -> dict[str, Any]:
    return canonical_record(heart_row(**changes), WHEN)
