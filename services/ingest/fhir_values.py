"""Validated FHIR R4B resources → canonical pieces: codes, values, times, observations, conditions (pure)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from shared.errors import RejectedInput
from shared.schemas import Code, Condition, Observation
from shared.schemas.records import LOINC, SNOMED

UCUM = "http://unitsofmeasure.org"
PREFERRED_SYSTEMS = (LOINC, SNOMED)
SKIPPED_STATUSES = {"entered-in-error", "cancelled"}
CLINICAL_STATUS = {
    "active": "active",
    "recurrence": "active",
    "relapse": "active",
    "inactive": "resolved",
    "remission": "resolved",
    "resolved": "resolved",
}


def as_datetime(value: Any) -> datetime | None:
    """FHIR dateTime/instant/date, including partial dates ("2026", "2026-01"), as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and value[:4].isdigit():
        parts = value.split("-")
        month = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1
        return datetime(int(parts[0]), min(max(month, 1), 12), 1, tzinfo=UTC)
    return None


def approximate_birth_date(value: Any) -> date | None:
    """A birthDate as a date; a partial one ("1961", "1961-03") mid-period, so the derived age is off by a year
    at most."""
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value[:4].isdigit():
        parts = value.split("-")
        if len(parts) > 1 and parts[1].isdigit():
            return date(int(parts[0]), min(max(int(parts[1]), 1), 12), 15)
        return date(int(parts[0]), 7, 1)
    return None


def pick_code(concept: Any, where: str) -> Code:
    """The LOINC (then SNOMED, then first) coding of a CodeableConcept."""
    codings = [c for c in (getattr(concept, "coding", None) or []) if c.system and c.code]
    if not codings:
        raise RejectedInput(f"{where}: no coding with both system and code", "schema")
    best = next((c for s in PREFERRED_SYSTEMS for c in codings if c.system == s), codings[0])
    display = best.display[:512] if best.display else None
    return Code(system=best.system, code=best.code, display=display)


def finite(value: Decimal | int | float, where: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise RejectedInput(f"{where}: not a finite number", "schema")
    return number


def value_fields(element: Any, where: str) -> dict[str, Any]:
    """The value[x] of an Observation or component as canonical fields (empty when there is none)."""
    quantity = getattr(element, "valueQuantity", None)
    if quantity is not None:
        fields: dict[str, Any] = {}
        if quantity.value is not None:
            fields["value"] = finite(quantity.value, f"{where}.valueQuantity.value")
        unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
        if unit:
            fields["unit"] = unit
        return fields
    concept = getattr(element, "valueCodeableConcept", None)
    if concept is not None:
        return {"value_code": pick_code(concept, f"{where}.valueCodeableConcept")}
    if getattr(element, "valueInteger", None) is not None:
        return {"value": float(element.valueInteger)}
    if getattr(element, "valueBoolean", None) is not None:
        return {"value_text": "true" if element.valueBoolean else "false"}
    if getattr(element, "valueString", None) is not None:
        return {"value_text": element.valueString[:4096]}
    return {}


def reference_range(element: Any) -> str | None:
    ranges = getattr(element, "referenceRange", None) or []
    if not ranges:
        return None
    low, high = ranges[0].low, ranges[0].high
    if ranges[0].text:
        return ranges[0].text[:128]
    low_text, high_text = (f"{float(q.value):g}" if q is not None and q.value is not None else "" for q in (low, high))
    if low_text and high_text:
        return f"{low_text}-{high_text}"
    return f">={low_text}" if low_text else f"<={high_text}" if high_text else None


def interpretation(element: Any) -> str | None:
    for concept in getattr(element, "interpretation", None) or []:
        for coding in concept.coding or []:
            if coding.code:
                return coding.code[:32]
    return None


def observation_time(resource: Any) -> datetime | None:
    period = getattr(resource, "effectivePeriod", None)
    return (
        as_datetime(getattr(resource, "effectiveDateTime", None))
        or as_datetime(getattr(resource, "effectiveInstant", None))
        or as_datetime(period.start if period is not None else None)
        or as_datetime(getattr(resource, "issued", None))
    )


def observations_of(resource: Any, where: str) -> list[Observation]:
    """An Observation and its components (a BP panel gives its systolic and diastolic values) as canonical
    observations; one without any value is kept, value-less, so nothing the hospital sent disappears."""
    if resource.status in SKIPPED_STATUSES:
        return []
    code = pick_code(resource.code, f"{where}.code")
    when = observation_time(resource)
    shared = {"time": when, "reference_range": reference_range(resource), "interpretation": interpretation(resource)}
    out = []
    own = value_fields(resource, where)
    if own or not resource.component:
        out.append(Observation(code=code, **own, **shared))
    for index, component in enumerate(resource.component or []):
        part = f"{where}.component[{index}]"
        fields = value_fields(component, part)
        out.append(
            Observation(
                code=pick_code(component.code, f"{part}.code"),
                **fields,
                time=when,
                reference_range=reference_range(component),
                interpretation=interpretation(component),
            )
        )
    return out


def condition_of(resource: Any, where: str) -> Condition:
    status = "unknown"
    for coding in (resource.clinicalStatus.coding or []) if resource.clinicalStatus else []:
        status = CLINICAL_STATUS.get(coding.code or "", status)
    for coding in (resource.verificationStatus.coding or []) if resource.verificationStatus else []:
        if coding.code in ("refuted", "entered-in-error"):
            status = "refuted"
    return Condition(
        code=pick_code(resource.code, f"{where}.code"), onset=as_datetime(resource.onsetDateTime), status=status
    )


def report_findings(resource: Any, where: str) -> list[Observation]:
    """A DiagnosticReport's coded conclusions (its free-text conclusion is not carried: it may name people)."""
    code = pick_code(resource.code, f"{where}.code")
    when = as_datetime(resource.effectiveDateTime) or as_datetime(resource.issued)
    return [
        Observation(code=code, value_code=pick_code(c, f"{where}.conclusionCode[{i}]"), time=when)
        for i, c in enumerate(resource.conclusionCode or [])
    ]


def patient_identifier(patient: Any) -> str | None:
    """The medical record number (identifier typed MR), else the first identifier, else the resource id."""
    identifiers = [i for i in patient.identifier or [] if i.value]
    for identifier in identifiers:
        codings = identifier.type.coding if identifier.type and identifier.type.coding else []
        if any(c.code == "MR" for c in codings):
            return identifier.value
    if identifiers:
        return identifiers[0].value
    return patient.id


SEX = {"male": "male", "female": "female", "other": "other", "unknown": "unknown"}
