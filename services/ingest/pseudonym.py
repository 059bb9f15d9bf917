"""Pseudonyms and Safe Harbor generalization: pure functions, the key is passed in."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

from services.ingest.dates import shift_days

OLDEST_REPORTED_AGE = 90  # Safe Harbor: every age over 89 is reported as 90


class Pseudonymizer:
    """Keyed HMAC-SHA-256: the same patient at the same hospital always maps to the same pseudonym; the hospital is
    part of the input, so equal MRNs at two hospitals never collide."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def __call__(self, hospital: str, identifier: str, kind: str = "patient") -> str:
        message = "\x1f".join((kind, hospital, identifier.strip())).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def date_shift_days(self, pseudonym: str) -> int:
        """The patient's date offset (``dates.shift_days``): the same key, another domain."""
        return shift_days(self._key, pseudonym)


def age_in_years(birth: date, on: date) -> int:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return max(0, min(years, OLDEST_REPORTED_AGE))


def generalized_age(age: int | None) -> int | None:
    return None if age is None else max(0, min(age, OLDEST_REPORTED_AGE))
