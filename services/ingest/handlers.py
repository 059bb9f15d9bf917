"""ingest's subscriber logic: one raw document in, its canonical records (or one dead letter) out."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.ingest.documents import envelope_of, read_document
from services.ingest.pseudonym import Pseudonymizer
from shared.errors import RejectedInput
from shared.events import DeadLetters, EventPublisher
from shared.metrics import ServiceMetrics
from shared.topics import decode_headers


class IngestRaw:
    def __init__(
        self,
        records: EventPublisher,
        deadletters: DeadLetters,
        pseudonymize: Pseudonymizer,
        metrics: ServiceMetrics,
        max_bytes: int,
    ) -> None:
        self.records = records
        self.deadletters = deadletters
        self.pseudonymize = pseudonymize
        self.metrics = metrics
        self.max_bytes = max_bytes

    async def __call__(self, raw: ConsumerRecord) -> None:
        headers = decode_headers(raw.headers)
        document = raw.value or b""
        try:
            envelope = envelope_of(headers, f"{raw.topic}/{raw.partition}/{raw.offset}", datetime.now(UTC))
            records = read_document(document, headers, envelope, self.pseudonymize, self.max_bytes)
        except RejectedInput as rejected:
            await self.deadletters.send(raw, rejected.reason, rejected.reason_class)
            return
        await self.records.publish_many([(r, r.record_id, r.patient) for r in records])
        self.metrics.counted("emitted", len(records))
