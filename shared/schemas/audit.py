"""The value of ``audit``: who sent what kind of document, when, and which pseudonyms it produced.

Never an identifier: hospitals, formats, counts, pseudonyms and reasons only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AuditOutcome = Literal["ingested", "partially_ingested", "rejected"]


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    audit_id: str = Field(description="stable per source message: a redelivery yields the same id")
    service: str = Field(description="the service that handled the document, e.g. ingest")
    outcome: AuditOutcome
    hospital: str = Field(description="who sent it (ce_source)")
    message_id: str = Field(description="the hospital's message id (ce_id), or topic/partition/offset")
    content_type: str | None = Field(None, description="as declared, or as sniffed")
    source_format: str | None = Field(None, description="fhir, hl7v2, csv, xlsx, json or dicom; none if unknown")
    bytes: int = Field(ge=0)
    received_at: datetime
    records: int = Field(0, ge=0, description="canonical records published")
    rejected_parts: int = Field(0, ge=0, description="entries, rows or messages dead-lettered individually")
    pseudonyms: list[str] = Field(default_factory=list, description="patient pseudonyms of the records")
    record_ids: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list, description="why parts or the whole document were rejected")
