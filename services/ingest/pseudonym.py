"""Pseudonyms and Safe Harbor generalization: pure functions, the key is passed in."""

from __future__ import annotations

from datetime import date

from services.ingest.dates import shift_days
from shared.errors import RejectedInput
from shared.pseudonyms import MIN_KEY_BYTES, pseudonym, referenced_patient

OLDEST_REPORTED_AGE = 90  # Safe Harbor: every age over 89 is reported as 90


class Pseudonymizer:
    """The deployment's key bound: pseudonyms (``shared.pseudonyms``) and each patient's date offset."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __call__(self, hospital: str, identifier: str, kind: str = "patient") -> str:
        return pseudonym(self._key, hospital, identifier, kind)

    def patient(self, hospital: str, patient_id: str) -> str:
        """The pseudonym of a document's patient: made from the hospital's MRN, or taken from a platform patient
        reference (``shared.pseudonyms.patient_reference``) that was sealed for this hospital."""
        try:
            known = referenced_patient(self._key, hospital, patient_id)
        except ValueError:
            raise RejectedInput(
                "patient_id: a platform patient reference (aimass-patient:...) that was not made for this hospital; "
                "send the hospital's own patient id, or the reference the platform's page gave for this hospital",
                "wrong_source",
            ) from None
        return known if known is not None else self(hospital, patient_id)

    def date_shift_days(self, pseudonym: str) -> int:
        """The patient's date offset (``dates.shift_days``): the same key, another domain."""
        return shift_days(self._key, pseudonym)


def age_in_years(birth: date, on: date) -> int:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return max(0, min(years, OLDEST_REPORTED_AGE))


def generalized_age(age: int | None) -> int | None:
    return None if age is None else max(0, min(age, OLDEST_REPORTED_AGE))
