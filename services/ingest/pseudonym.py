"""Pseudonyms and Safe Harbor generalization: pure functions, the key is passed in."""

from __future__ import annotations

from datetime import date

from services.ingest.dates import shift_days
from shared.pseudonyms import MIN_KEY_BYTES, pseudonym

OLDEST_REPORTED_AGE = 90  # Safe Harbor: every age over 89 is reported as 90


class Pseudonymizer:
    """The deployment's key bound: pseudonyms (``shared.pseudonyms``) and each patient's date offset."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __call__(self, hospital: str, identifier: str, kind: str = "patient") -> str:
        return pseudonym(self._key, hospital, identifier, kind)

    def date_shift_days(self, pseudonym: str) -> int:
        """The patient's date offset (``dates.shift_days``): the same key, another domain."""
        return shift_days(self._key, pseudonym)


def age_in_years(birth: date, on: date) -> int:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return max(0, min(years, OLDEST_REPORTED_AGE))


def generalized_age(age: int | None) -> int | None:
    return None if age is None else max(0, min(age, OLDEST_REPORTED_AGE))
