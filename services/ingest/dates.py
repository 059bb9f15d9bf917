"""Safe Harbor dates: every date of a patient's care moves by one whole number of days of the patient's own (pure).

The offset is ``HMAC-SHA-256(key, "date-shift" ␟ pseudonym)`` mapped onto ±1..365 days, never 0: the same patient
(same hospital, same identifier, hence the same pseudonym) moves by the same offset in every document and format, so
the intervals between a patient's events are kept while the calendar dates are not. The key is the pseudonym key;
the "date-shift" prefix separates this use of it from the pseudonyms (whose messages start with "patient",
"encounter" or "dicom-uid"), so an offset says nothing about a pseudonym and the other way round. Whole days keep the
time of day, the time zone and every interval; ages are computed from the real dates before anything moves.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, timedelta
from typing import TypeVar

from shared.schemas import CanonicalRecord

MAX_SHIFT_DAYS = 365
DOMAIN = "date-shift"
_When = TypeVar("_When", date, datetime)


class UnshiftableDate(ValueError):
    """A date so close to year 1 or 9999 that the shift would leave the calendar (the document is rejected)."""


def shift_days(key: bytes, pseudonym: str) -> int:
    """The patient's offset in days: in ``[-MAX_SHIFT_DAYS, -1] ∪ [1, MAX_SHIFT_DAYS]``, stable per key and pseudonym.

    64 bits of the HMAC modulo the 730 possible offsets: the bias of the modulo is below 2^-50, nothing to see."""
    digest = hmac.new(key, f"{DOMAIN}\x1f{pseudonym}".encode(), hashlib.sha256).digest()
    slot = int.from_bytes(digest[:8], "big") % (2 * MAX_SHIFT_DAYS)  # 0 .. 729
    return slot - MAX_SHIFT_DAYS if slot < MAX_SHIFT_DAYS else slot - MAX_SHIFT_DAYS + 1  # -365..-1, 1..365


def shifted(when: _When, days: int) -> _When:
    """``when`` moved by ``days``; a datetime keeps its time of day and its time zone (aware stays aware)."""
    try:
        return when + timedelta(days=days)
    except OverflowError:
        raise UnshiftableDate(f"a date within {MAX_SHIFT_DAYS} days of the calendar's ends cannot be shifted") from None


def shifted_or_none(when: _When | None, days: int) -> _When | None:
    return None if when is None else shifted(when, days)


def shift_record(record: CanonicalRecord, days: int) -> CanonicalRecord:
    """Every time of the record that describes the patient's care, moved: the encounter's ``recorded_at``, each
    observation's ``time`` and each condition's ``onset``. ``received_at`` is ingest's own clock (system metadata,
    see docs/ingest.md "Safe Harbor") and stays as it is; the demographics carry an age, never a date."""
    return record.model_copy(
        update={
            "recorded_at": shifted_or_none(record.recorded_at, days),
            "observations": [o.model_copy(update={"time": shifted_or_none(o.time, days)}) for o in record.observations],
            "conditions": [c.model_copy(update={"onset": shifted_or_none(c.onset, days)}) for c in record.conditions],
        }
    )


def shift_dicom_date(value: str, days: int) -> str:
    """A DICOM DA value (``YYYYMMDD``) moved; anything that is not a full valid date becomes empty (a partial or
    garbled date cannot be shifted, and kept as sent it would be the real one)."""
    text = value.strip()
    try:
        return shifted(datetime.strptime(text, "%Y%m%d").date(), days).strftime("%Y%m%d") if len(text) == 8 else ""
    except ValueError:  # not a date, or one at the calendar's ends (UnshiftableDate is a ValueError)
        return ""


def shift_dicom_datetime(value: str, days: int) -> str:
    """A DICOM DT value (``YYYYMMDD[HHMMSS[.F]][±HHMM]``) with its date part moved and everything after it kept (the
    time of day and the offset do not change under a whole-day shift); empty when the date part is not a date."""
    text = value.strip()
    day = shift_dicom_date(text[:8], days)
    return day + text[8:] if day else ""
