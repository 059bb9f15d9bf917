"""The audit trail of ingest: one event per document, naming who sent what kind, when, and which pseudonyms it
produced; never an identifier (pure)."""

from __future__ import annotations

from datetime import datetime

from services.ingest.documents import Ingested
from shared.events import one_line
from shared.schemas.audit import AuditEvent
from shared.topics import derived_event_id


def audit_id(hospital: str, message_id: str) -> str:
    return derived_event_id("ingest-audit", f"{hospital}/{message_id}")


def ingested_event(hospital: str, message_id: str, size: int, received_at: datetime, ingested: Ingested) -> AuditEvent:
    return AuditEvent(
        audit_id=audit_id(hospital, message_id),
        service="ingest",
        outcome="partially_ingested" if ingested.rejected else "ingested",
        hospital=hospital,
        message_id=message_id,
        content_type=ingested.content_type,
        source_format=ingested.source_format,
        bytes=size,
        received_at=received_at,
        records=len(ingested.records),
        rejected_parts=len(ingested.rejected),
        pseudonyms=sorted({r.patient for r in ingested.records}),
        record_ids=[r.record_id for r in ingested.records],
        reasons=[one_line(p.reason) for p in ingested.rejected[:20]],
    )


def rejected_event(
    hospital: str,
    message_id: str,
    size: int,
    received_at: datetime,
    content_type: str | None,
    source_format: str | None,
    reason: str,
) -> AuditEvent:
    return AuditEvent(
        audit_id=audit_id(hospital, message_id),
        service="ingest",
        outcome="rejected",
        hospital=hospital,
        message_id=message_id[:256],
        content_type=content_type[:80] if content_type else None,
        source_format=source_format,
        bytes=size,
        received_at=received_at,
        reasons=[one_line(reason)],
    )
