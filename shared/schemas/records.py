"""The canonical clinical record: what hospitals may send as ``application/json``, and what ingest and clean emit.

``IncomingRecord`` still carries the hospital's own patient identifier and birth date; ingest turns it into a
``CanonicalRecord`` that carries only a pseudonym and an age. Nothing after ingest holds a direct identifier.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
AIMASS_CODES = "urn:aimass:code"
"""The project's own code system, for concepts LOINC lacks (e.g. the UCI heart-disease exercise test items)."""

Sex = Literal["male", "female", "other", "unknown"]
SourceFormat = Literal["fhir", "hl7v2", "csv", "xlsx", "json", "dicom"]
NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Code(_Model):
    system: NonEmpty = Field(description="code system URI, e.g. http://loinc.org")
    code: NonEmpty
    display: str | None = Field(None, max_length=512)


class Observation(_Model):
    code: Code
    value: float | None = Field(None, description="numeric value, in `unit`")
    value_code: Code | None = Field(None, description="coded value (e.g. a finding)")
    value_text: str | None = Field(None, max_length=4096)
    unit: str | None = Field(None, max_length=64, description="UCUM unit as sent (clean converts)")
    time: datetime | None = None
    reference_range: str | None = Field(None, max_length=128)
    interpretation: str | None = Field(None, max_length=32, description="abnormal flag, e.g. H, L, N")


class Condition(_Model):
    code: Code
    onset: datetime | None = None
    status: Literal["active", "resolved", "refuted", "unknown"] = "active"


class ImagingReference(_Model):
    study_uid: NonEmpty = Field(description="replacement UID: the original is never carried")
    series_uid: NonEmpty
    modality: str | None = None
    body_part: str | None = None
    rows: int | None = None
    columns: int | None = None
    pixel_mean: float | None = None
    pixel_std: float | None = None
    uri: str | None = Field(None, description="claim check: where ingest stored the pixel data")
    instance_uid: str | None = Field(None, description="replacement SOP instance UID")
    pixel_min: float | None = None
    pixel_max: float | None = None
    pixel_bytes: int | None = Field(None, ge=0, description="size of the pixel data as received")
    acquisition: dict[str, float | str] = Field(
        default_factory=dict, description="acquisition parameters by DICOM keyword, e.g. SliceThickness, KVP"
    )


class Demographics(_Model):
    age_years: int | None = Field(None, ge=0, le=90, description="ages over 89 are reported as 90 (Safe Harbor)")
    sex: Sex = "unknown"


class IncomingRecord(_Model):
    """``application/json`` from a hospital: the canonical record before pseudonymization."""

    patient_id: NonEmpty = Field(description="the hospital's own patient identifier (MRN); never leaves ingest")
    encounter_id: str | None = Field(None, max_length=256)
    recorded_at: datetime | None = Field(None, description="when the encounter happened")
    birth_date: date | None = Field(None, description="turned into age_years by ingest, then dropped")
    age_years: int | None = Field(None, ge=0, le=150)
    sex: Sex = "unknown"
    observations: list[Observation] = Field(default_factory=list, max_length=10_000)
    conditions: list[Condition] = Field(default_factory=list, max_length=1_000)


class CanonicalRecord(_Model):
    """One patient encounter at one hospital, pseudonymized: the value of ``records.ingested``."""

    record_id: NonEmpty = Field(description="stable id of this record, derived from the source message")
    patient: NonEmpty = Field(description="HMAC-SHA-256 pseudonym of the hospital's patient id")
    hospital: NonEmpty
    encounter: str | None = Field(None, description="pseudonymized encounter id")
    recorded_at: datetime | None = None
    received_at: datetime
    source_format: SourceFormat
    demographics: Demographics = Demographics()
    observations: list[Observation] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    imaging: list[ImagingReference] = Field(default_factory=list)


class QualityFlag(_Model):
    kind: Literal["missing", "implausible", "unknown_unit", "incompatible_unit", "unmapped_code", "duplicate"]
    field: str = Field(description="the observation code or feature the flag is about")
    detail: str = ""


class TaskFeatures(_Model):
    """A task's feature vector in the order its config declares; ``None`` marks a missing value."""

    names: list[str]
    values: list[FiniteFloat | None]
    label: float | None = None

    @model_validator(mode="after")
    def _one_value_per_name(self) -> TaskFeatures:
        if len(self.values) != len(self.names):
            raise ValueError(f"{len(self.names)} names but {len(self.values)} values")
        return self


class AsSent(_Model):
    """An observation's code, value and unit as the hospital sent them, kept where clean changed any of them."""

    code: Code
    value: float | None = None
    unit: str | None = None


class CleanObservation(Observation):
    """An observation after clean: code mapped to LOINC / the project's codes, value in the canonical UCUM unit
    (``None`` when implausible); ``as_sent`` keeps the original when anything changed."""

    as_sent: AsSent | None = None


class CleanRecord(CanonicalRecord):
    """The value of ``records.clean``: normalized, flagged, with per-task features."""

    observations: list[CleanObservation] = Field(default_factory=list)  # type: ignore[assignment]
    quality_flags: list[QualityFlag] = Field(default_factory=list)
    features: dict[str, TaskFeatures] = Field(default_factory=dict)
