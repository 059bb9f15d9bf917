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
