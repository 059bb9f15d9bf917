"""ingest's subscriber logic: a batch of raw documents in; for each, its records, its rejected parts (each a dead
letter) and one audit event out, all acknowledged by the broker before the batch's offsets are committed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from time import perf_counter

from aiokafka import ConsumerRecord

from services.ingest.audit import audit_id, ingested_event, rejected_event
from services.ingest.claim_check import FileClaimChecks
from services.ingest.documents import Ingested, content_type_of, envelope_of, format_of
from services.ingest.metrics import IngestMetrics
from services.ingest.parsed import RejectedPart
from services.ingest.records import Envelope
from shared.errors import RejectedInput
from shared.events import DeadLetters, EventPublisher, confirmed
from shared.metrics import ServiceMetrics
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE, decode_headers, record_position

Reader = Callable[[bytes, Mapping[str, str], Envelope], Ingested]
OFF_LOOP_BYTES = 64 * 1024  # larger documents are parsed in a thread so heartbeats keep going
INFLATING_FORMATS = ("xlsx", "dicom")  # compressed: a few KiB can inflate to seconds of parsing, so always a thread


def parsed_off_loop(headers: Mapping[str, str], document: bytes) -> bool:
    return len(document) > OFF_LOOP_BYTES or format_of(headers, document) in INFLATING_FORMATS


def part_record(raw: ConsumerRecord, part: RejectedPart, message_id: str) -> ConsumerRecord:
    """The rejected part as if it had been sent alone: its own bytes, content-type and a message id of its own
    (so a replayed, fixed part is not taken for a duplicate of the document it came from)."""
    replaced = {CONTENT_TYPE: part.content_type.encode(), CE_ID: f"{message_id}#{part.label}".encode()}
    headers = [(k, v) for k, v in raw.headers if k not in replaced] + list(replaced.items())
    return dataclasses.replace(raw, value=part.document, headers=headers)


class IngestRaw:
    def __init__(
        self,
        records: EventPublisher,
        audit: EventPublisher,
        deadletters: DeadLetters,
        claim_checks: FileClaimChecks,
        metrics: ServiceMetrics,
        ingest_metrics: IngestMetrics,
        read: Reader,
    ) -> None:
        self.records = records
        self.audit = audit
        self.deadletters = deadletters
        self.claim_checks = claim_checks
        self.metrics = metrics
        self.ingest_metrics = ingest_metrics
        self.read = read

    async def __call__(self, batch: Sequence[ConsumerRecord]) -> None:
        """One batch from ``ingest.raw``: every document read and its outputs enqueued, then one wait for all the
        acknowledgements before the batch's offsets are committed. Bad input never raises (it becomes dead
        letters); anything that does raise re-delivers the whole batch, and the derived event ids absorb the
        duplicates of what was already sent."""
        pending: list[Awaitable[object] | None] = []
        emitted = 0
        for raw in batch:
            emitted += await self._ingest(raw, pending)
            await asyncio.sleep(0)  # the producer ships what was enqueued while the next document is read
        await confirmed(pending)
        self.metrics.counted("emitted", emitted)

    async def _ingest(self, raw: ConsumerRecord, pending: list[Awaitable[object] | None]) -> int:
        """Enqueues the document's records, rejected parts and audit event; returns how many records."""
        headers = decode_headers(raw.headers)
        document = raw.value or b""
        received = datetime.now(UTC)
        started = perf_counter()
        try:
            envelope = envelope_of(headers, record_position(raw), received)
            if parsed_off_loop(headers, document):
                ingested = await asyncio.to_thread(self.read, document, headers, envelope)
            else:
                ingested = self.read(document, headers, envelope)
        except RejectedInput as rejected:
            pending.extend(await self._reject(raw, headers, document, received, rejected, perf_counter() - started))
            return 0
        self.ingest_metrics.received(envelope.hospital, ingested.source_format, len(document), perf_counter() - started)
        await self.claim_checks.store(ingested.attachments)
        pending.extend([await self.records.enqueue(r, event_id=r.record_id, key=r.patient) for r in ingested.records])
        for part in ingested.rejected:
            pending.append(
                await self.deadletters.enqueue(
                    part_record(raw, part, envelope.message_id), part.reason, part.reason_class
                )
            )
            self.ingest_metrics.failed(part.reason_class)
        event = ingested_event(envelope.hospital, envelope.message_id, len(document), received, ingested)
        pending.append(await self.audit.enqueue(event, event_id=event.audit_id, key=envelope.hospital))
        return len(ingested.records)

    async def _reject(
        self,
        raw: ConsumerRecord,
        headers: dict[str, str],
        document: bytes,
        received: datetime,
        rejected: RejectedInput,
        seconds: float,
    ) -> list[Awaitable[object] | None]:
        hospital = (headers.get(CE_SOURCE) or "").strip()[:128] or "unknown"
        message_id = headers.get(CE_ID) or record_position(raw)
        source_format = format_of(headers, document)
        self.ingest_metrics.received(hospital, source_format or "unknown", len(document), seconds)
        self.ingest_metrics.failed(rejected.reason_class)
        event = rejected_event(
            hospital,
            message_id,
            len(document),
            received,
            content_type_of(headers, document),
            source_format,
            rejected.reason,
        )
        return [
            await self.deadletters.enqueue(raw, rejected.reason, rejected.reason_class),
            await self.audit.enqueue(event, event_id=audit_id(hospital, message_id), key=hospital),
        ]
