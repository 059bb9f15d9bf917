"""Turning a canonical record into a clean one (pure). Units, codes, quality and features grow here."""

from __future__ import annotations

from shared.schemas import CanonicalRecord, CleanRecord


def clean(record: CanonicalRecord) -> CleanRecord:
    return CleanRecord(**record.model_dump())
