"""Reading HL7 v2 fields with the ``hl7`` library: safe access, code systems, dates, OBX values (pure)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import hl7

from shared.errors import RejectedInput
from shared.schemas import Code, Observation
from shared.schemas.records import AIMASS_CODES, LOINC, SNOMED

# HL7 table 0396 names → URIs; "99AIM" is the project's local coding system (local names start with 99).
CODING_SYSTEMS = {
    "LN": LOINC,
    "LOINC": LOINC,
    "SCT": SNOMED,
    "SNM": SNOMED,
    "SNOMED": SNOMED,
    "99AIM": AIMASS_CODES,
    "AIMASS": AIMASS_CODES,
}
SEX = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
NUMERIC_TYPES = {"NM"}
CODED_TYPES = {"CE", "CWE", "CNE", "CF"}
# Text results: carried as value_text, which ingest then drops unless a task allowlists the code (free_text.py).
TEXT_TYPES = {"ST", "TX", "FT", "ID", "IS"}
# Any other type (DT, DTM, TS, TM: a date of the patient's; CX, XPN, XAD, XTN: an identifier, a name, an address, a
# phone number; ED, RP: documents) is not carried: the observation stays, without its value.
SKIPPED_RESULT_STATUSES = {"D", "W"}  # deleted, wrong: the sender withdrew the value
MAX_REPETITIONS = 50


def value(segment: Any, field: int, repetition: int = 1, component: int = 1) -> str:
    """A field's component, unescaped; '' when absent."""
    try:
        return str(segment.extract_field(1, field, repetition, component, 1)).strip()
    except (IndexError, KeyError, TypeError, AttributeError):
        return ""


def repetitions(segment: Any, field: int) -> int:
    count = 0
    while count < MAX_REPETITIONS and any(value(segment, field, count + 1, c) for c in (1, 2, 3, 4, 5)):
        count += 1
    return count


def coding_system(name: str) -> str | None:
    if not name:
        return None
    if ":" in name:
        return name
    return CODING_SYSTEMS.get(name.upper(), f"urn:aimass:hl7-coding-system:{name}")


def coded(segment: Any, field: int, where: str, repetition: int = 1) -> Code:
    """A CE/CWE element (identifier^text^coding system)."""
    identifier, text, system = (value(segment, field, repetition, c) for c in (1, 2, 3))
    uri = coding_system(system)
    if not identifier or uri is None:
        raise RejectedInput(f"{where}: needs an identifier and a coding system (components 1 and 3)", "schema")
    return Code(system=uri, code=identifier[:256], display=text[:512] or None)


def timestamp(text: str, where: str) -> datetime | None:
    if not text:
        return None
    try:
        parsed = hl7.parse_datetime(text)
    except (ValueError, TypeError, OverflowError):
        raise RejectedInput(f"{where}: not an HL7 date/time", "schema") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def birth_date(text: str, where: str) -> date | None:
    """PID-7; a year or year-month alone is placed mid-period (the age is then off by a year at most)."""
    parsed = timestamp(text, where)
    if parsed is None:
        return None
    digits = len(text.split("+")[0].split("-")[0].split(".")[0])
    if digits <= 4:
        return date(parsed.year, 7, 1)
    if digits <= 6:
        return date(parsed.year, parsed.month, 15)
    return parsed.date()


def number(text: str, where: str) -> float:
    try:
        result = float(text)
    except ValueError:
        raise RejectedInput(f"{where} not numeric for NM", "schema") from None
    if not math.isfinite(result):
        raise RejectedInput(f"{where} not a finite number", "schema")
    return result


def _obx_value(obx: Any, kind: str, where: str) -> dict[str, Any]:
    first = value(obx, 5)
    if not first and not value(obx, 5, 1, 2):
        return {}
    if kind in NUMERIC_TYPES:
        return {"value": number(first, f"{where}-5")}
    if kind == "SN":  # structured numeric: comparator^num1^separator^num2
        comparator, low, separator, high = (value(obx, 5, 1, c) for c in (1, 2, 3, 4))
        if comparator in ("", "=") and not separator and not high:
            return {"value": number(low, f"{where}-5.2")}
        return {"value_text": f"{comparator}{low}{separator}{high}"}
    if kind in CODED_TYPES:
        return {"value_code": coded(obx, 5, f"{where}-5")}
    if kind not in TEXT_TYPES:
        return {}
    texts = [value(obx, 5, r) for r in range(1, repetitions(obx, 5) + 1)]
    return {"value_text": "\n".join(t for t in texts if t)[:4096]}


def observation(obx: Any, where: str, default_time: datetime | None) -> Observation | None:
    """One OBX as a canonical observation; ``None`` for a result the sender withdrew."""
    if value(obx, 11) in SKIPPED_RESULT_STATUSES:
        return None
    kind = value(obx, 2).upper()
    return Observation(
        code=coded(obx, 3, f"{where}-3"),
        **_obx_value(obx, kind, where),
        unit=value(obx, 6)[:64] or None,
        reference_range=value(obx, 7)[:128] or None,
        interpretation=value(obx, 8)[:32] or None,
        time=timestamp(value(obx, 14), f"{where}-14") or default_time,
    )


def patient_identifier(pid: Any) -> str:
    """PID-3: the repetition typed MR (CX.5), else the first one."""
    count = repetitions(pid, 3)
    ids = [(value(pid, 3, r, 1), value(pid, 3, r, 5)) for r in range(1, count + 1)]
    chosen = next((i for i, kind in ids if i and kind.upper() == "MR"), None) or next((i for i, _ in ids if i), "")
    if not chosen:
        raise RejectedInput("HL7 PID-3: no patient identifier", "schema")
    return chosen[:256]
