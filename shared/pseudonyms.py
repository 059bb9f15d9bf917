"""The pseudonym of a patient: keyed HMAC-SHA-256 over (kind, hospital, identifier), the same for ingest, which makes
them, and for the services that must find a patient an EHR names by its own id (CDS Hooks' ``context.patientId``)."""

from __future__ import annotations

import hashlib
import hmac

MIN_KEY_BYTES = 16


def pseudonym(key: bytes, hospital: str, identifier: str, kind: str = "patient") -> str:
    """The same patient at the same hospital always maps to the same pseudonym; the hospital is part of the input,
    so equal MRNs at two hospitals never collide."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
    message = "\x1f".join((kind, hospital, identifier.strip())).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


PATIENT_REFERENCE_PREFIX = "aimass-patient:"
"""A patient id of this form is a patient the platform already knows, named by its pseudonym and sealed to one
hospital: what the platform's own pages write back (an answer to a question) carries it instead of an MRN, which
never leaves ingest."""


def _seal(key: bytes, hospital: str, patient: str) -> str:
    message = "\x1f".join(("patient-reference", hospital, patient)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def patient_reference(key: bytes, hospital: str, patient: str) -> str:
    """``aimass-patient:<pseudonym>.<seal>``: valid as a patient id of ``hospital``'s documents only."""
    return f"{PATIENT_REFERENCE_PREFIX}{patient}.{_seal(key, hospital, patient)}"


def referenced_patient(key: bytes, hospital: str, identifier: str) -> str | None:
    """The pseudonym a patient reference names, ``None`` when ``identifier`` is not one (an MRN); ``ValueError``
    when it is one but not sealed for ``hospital`` (made for another hospital, or altered)."""
    if not identifier.startswith(PATIENT_REFERENCE_PREFIX):
        return None
    patient, _, seal = identifier.removeprefix(PATIENT_REFERENCE_PREFIX).partition(".")
    if not patient or not hmac.compare_digest(seal, _seal(key, hospital, patient)):
        raise ValueError("a platform patient reference not sealed for this hospital")
    return patient
