"""What ingest's own front doors (MLLP listeners, FHIR REST intake) share: a document as the hospital sent it,
written to the contract topic ``ingest.raw`` for the stream to read, and what a door does with a document it turns
away (pure, but for the ports).

A door identifies the hospital by how it was reached — the MLLP port, the access token's ``hospital`` claim — and
never by what the document claims; it writes ``ce_source`` itself. Each document is checked with the reader the
stream uses before it is acknowledged, and acknowledged only after the broker acknowledged the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.ingest.audit import audit_id, rejected_event
from services.ingest.documents import Ingested, envelope_of, format_of
from services.ingest.handlers import parsed_off_loop
from services.ingest.metrics import IngestMetrics
from services.ingest.ports import DocumentReader
from shared.errors import RejectedInput
from shared.events import confirmed
from shared.ports import DeadLetterSink, Publisher
from shared.submissions import RawDocuments, submission_headers
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE

NO_POSITION = -1  # a door's document was never on a partition: Kafka's "none" for its dead letter's position


@dataclass(frozen=True)
class Submission:
    """One document a door writes: the bytes as they came, the headers the door sets, the key (the hospital)."""

    document: bytes
    headers: dict[str, str]

    @property
    def hospital(self) -> str:
        return self.headers[CE_SOURCE]

    @property
    def event_id(self) -> str:
        return self.headers[CE_ID]


def submission(document: bytes, hospital: str, event_id: str, content_type: str, now: datetime) -> Submission:
    return Submission(document, submission_headers(hospital, event_id, content_type, now))


def as_record(item: Submission, topic: str) -> ConsumerRecord:
    """The document as if it had been read from ``topic`` (``ingest.raw``), for the dead-letter topic: there it
    keeps its bytes and headers and names ``ingest.raw`` as where ``aimass replay`` sends it back to."""
    headers = [(k, v.encode()) for k, v in item.headers.items()]
    key = item.hospital.encode()
    return ConsumerRecord(
        topic, NO_POSITION, NO_POSITION, 0, 0, key, item.document, None, len(key), len(item.document), headers
    )


class Door:
    """Checks a hospital's documents with the stream's reader and writes them where they belong: ``ingest.raw``
    when the stream can read them; the dead-letter topic (with an audit event, as the stream would write) when a
    door must keep what it turns away."""

    def __init__(
        self,
        read: DocumentReader,
        raw: RawDocuments,
        deadletters: DeadLetterSink,
        audit: Publisher,
        metrics: IngestMetrics,
        raw_topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.read = read
        self.raw = raw
        self.deadletters = deadletters
        self.audit = audit
        self.metrics = metrics
        self.raw_topic = raw_topic
        self.clock = clock

    async def check(self, item: Submission) -> Ingested:
        """The reader's verdict on one document: ``RejectedInput`` when nothing in it can be used, else what it
        holds (its ``rejected`` parts the stream will dead-letter alone). A large document is read in a thread."""
        if parsed_off_loop(item.headers, item.document):
            return await asyncio.to_thread(self.check_now, item)
        return self.check_now(item)

    def check_now(self, item: Submission) -> Ingested:
        return self.read(item.document, item.headers, envelope_of(item.headers, item.event_id, self.clock()))

    async def store(self, items: Sequence[Submission]) -> None:
        """Every document written to ``ingest.raw`` and acknowledged by the broker (the first failure raises)."""
        await confirmed([await self.raw.enqueue(i.document, i.headers, i.hospital) for i in items])

    async def keep_rejected(self, item: Submission, rejected: RejectedInput) -> None:
        """A document turned away but kept: on the dead-letter topic with the reason, and an audit event; both
        acknowledged before the sender hears of it."""
        record = as_record(item, self.raw_topic)
        source_format = format_of(item.headers, item.document)
        event = rejected_event(
            item.hospital,
            item.event_id,
            len(item.document),
            self.clock(),
            item.headers.get(CONTENT_TYPE),
            source_format,
            rejected.reason,
        )
        await confirmed(
            [
                await self.deadletters.enqueue(record, rejected.reason, rejected.reason_class),
                await self.audit.enqueue(event, event_id=audit_id(item.hospital, item.event_id), key=item.hospital),
            ]
        )
        self.rejected(item, rejected)

    async def audit_rejected(self, item: Submission, rejected: RejectedInput) -> None:
        """A document turned away and not kept (the sender has it and hears why): its audit event only."""
        event = rejected_event(
            item.hospital,
            item.event_id,
            len(item.document),
            self.clock(),
            item.headers.get(CONTENT_TYPE),
            format_of(item.headers, item.document),
            rejected.reason,
        )
        await self.audit.publish(event, event_id=audit_id(item.hospital, item.event_id), key=item.hospital)
        self.rejected(item, rejected)

    def rejected(self, item: Submission, rejected: RejectedInput) -> None:
        """Counted as the stream counts a document it rejects: this one never reaches the stream."""
        source_format = format_of(item.headers, item.document) or "unknown"
        self.metrics.received(item.hospital, source_format, len(item.document), 0.0)
        self.metrics.failed(rejected.reason_class)
