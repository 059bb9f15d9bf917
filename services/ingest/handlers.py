"""ingest's subscriber logic: a batch of raw documents in; for each, its records, its rejected parts (each a dead
letter) and one audit event out, all acknowledged by the broker before the batch's offsets are committed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter

from aiokafka import ConsumerRecord

from services.ingest.audit import audit_id, ingested_event, rejected_event
from services.ingest.documents import bound_to_sender, content_type_of, envelope_of, format_of
from services.ingest.metrics import IngestMetrics
from services.ingest.parsed import RejectedPart
from services.ingest.ports import ClaimChecks, DocumentReader
from shared.errors import RejectedInput
from shared.intake import Accepted, Batch
from shared.ports import Publisher
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE, hospital_of_input_topic, record_position

OFF_LOOP_BYTES = 64 * 1024  # larger documents are parsed in a thread so heartbeats keep going
INFLATING_FORMATS = ("xlsx", "dicom")  # compressed: a few KiB can inflate to seconds of parsing, so always a thread


def parsed_off_loop(headers: Mapping[str, str], document: bytes) -> bool:
    return len(document) > OFF_LOOP_BYTES or format_of(headers, document) in INFLATING_FORMATS


def raw_document(record: ConsumerRecord) -> bytes:
    """ingest's intake reads nothing yet: every document is accepted, and reading it is the domain's work."""
    return record.value or b""


def part_record(raw: ConsumerRecord, part: RejectedPart, message_id: str) -> ConsumerRecord:
    """The rejected part as if it had been sent alone: its own bytes, content-type and a message id of its own
    (so a replayed, fixed part is not taken for a duplicate of the document it came from)."""
    replaced = {CONTENT_TYPE: part.content_type.encode(), CE_ID: f"{message_id}#{part.label}".encode()}
    headers = [(k, v) for k, v in raw.headers if k not in replaced] + list(replaced.items())
    return dataclasses.replace(raw, value=part.document, headers=headers)


@dataclass
class IngestRaw:
    records: Publisher
    audit: Publisher
    claim_checks: ClaimChecks
    read: DocumentReader
    metrics: IngestMetrics
    topic_prefix: str = ""

    async def __call__(self, batch: Batch[bytes]) -> None:
        """Every document of the batch read and its outputs enqueued; ``Batch.confirm`` then waits for all of them.
        Bad input never raises (it becomes dead letters); anything that does raise re-delivers the whole batch, and
        the derived event ids absorb the duplicates of what was already sent."""
        for item in batch:
            batch.count("emitted", await self._ingest(item, batch))
            await asyncio.sleep(0)  # the producer ships what was enqueued while the next document is read

    async def _ingest(self, item: Accepted[bytes], batch: Batch[bytes]) -> int:
        """Enqueues the document's records, rejected parts and audit event; returns how many records."""
        raw, document, headers = item.record, item.event, item.headers
        received = datetime.now(UTC)
        started = perf_counter()
        try:
            headers = bound_to_sender(headers, hospital_of_input_topic(raw.topic, self.topic_prefix))
            envelope = envelope_of(headers, record_position(raw), received)
            if parsed_off_loop(headers, document):
                ingested = await asyncio.to_thread(self.read, document, headers, envelope)
            else:
                ingested = self.read(document, headers, envelope)
        except RejectedInput as rejected:
            await self._reject(item, received, rejected, perf_counter() - started, batch)
            return 0
        self.metrics.received(envelope.hospital, ingested.source_format, len(document), perf_counter() - started)
        self.metrics.dropped_free_text(envelope.hospital, ingested.source_format, ingested.free_text_dropped)
        await self.claim_checks.store(ingested.attachments)
        for record in ingested.records:
            await batch.send(self.records, record, event_id=record.record_id, key=record.patient)
        for part in ingested.rejected:
            part_alone = part_record(raw, part, envelope.message_id)
            await batch.reject(part_alone, RejectedInput(part.reason, part.reason_class))
            self.metrics.failed(part.reason_class)
        event = ingested_event(envelope.hospital, envelope.message_id, len(document), received, ingested)
        await batch.send(self.audit, event, event_id=event.audit_id, key=envelope.hospital)
        return len(ingested.records)

    async def _reject(
        self, item: Accepted[bytes], received: datetime, rejected: RejectedInput, seconds: float, batch: Batch[bytes]
    ) -> None:
        headers, document = item.headers, item.event
        sender = hospital_of_input_topic(item.record.topic, self.topic_prefix)  # who did send it, whatever it claims
        hospital = sender or (headers.get(CE_SOURCE) or "").strip()[:128] or "unknown"
        message_id = headers.get(CE_ID) or record_position(item.record)
        source_format = format_of(headers, document)
        self.metrics.received(hospital, source_format or "unknown", len(document), seconds)
        self.metrics.failed(rejected.reason_class)
        content_type = content_type_of(headers, document)
        event = rejected_event(
            hospital, message_id, len(document), received, content_type, source_format, rejected.reason
        )
        await batch.reject(item.record, rejected)
        await batch.send(self.audit, event, event_id=audit_id(hospital, message_id), key=hospital)
