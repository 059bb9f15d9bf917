"""Pydantic v2 message schemas, one module per topic family. The JSON Schemas in docs/schemas/ come from here."""

from shared.schemas.records import (
    AsSent,
    CanonicalRecord,
    CleanObservation,
    CleanRecord,
    Code,
    Condition,
    Demographics,
    ImagingReference,
    IncomingRecord,
    Observation,
    QualityFlag,
    TaskFeatures,
)

__all__ = [
    "AsSent",
    "CanonicalRecord",
    "CleanObservation",
    "CleanRecord",
    "Code",
    "Condition",
    "Demographics",
    "ImagingReference",
    "IncomingRecord",
    "Observation",
    "QualityFlag",
    "TaskFeatures",
]
