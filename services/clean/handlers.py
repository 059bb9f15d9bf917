"""clean's subscriber logic. Remember an event only after its output was acknowledged: a crash in between
re-emits under the same derived id, which downstream de-duplication absorbs; remembering first could lose it."""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord

from services.clean.cleaning import Cleaner
from services.clean.fingerprint import content_fingerprint
from services.clean.metrics import CleanMetrics
from services.clean.seen import SeenEvents
from shared.errors import RejectedInput, parse_event
from shared.events import DeadLetters, EventPublisher
from shared.metrics import ServiceMetrics
from shared.schemas import CanonicalRecord
from shared.topics import derived_event_id, event_id_of

log = logging.getLogger("aimass.clean")


class CleanIngested:
    def __init__(self, out: EventPublisher, deadletters: DeadLetters, seen: SeenEvents, cleaner: Cleaner,
                 metrics: ServiceMetrics, clean_metrics: CleanMetrics) -> None:
        self.out = out
        self.deadletters = deadletters
        self.seen = seen
        self.cleaner = cleaner
        self.metrics = metrics
        self.clean_metrics = clean_metrics

    async def __call__(self, raw: ConsumerRecord) -> None:
        event_id = event_id_of(raw)
        if await self.seen.seen(event_id):
            self._duplicate("event_id")
            return
        try:
            record = parse_event(raw.value, CanonicalRecord, raw.topic)
        except RejectedInput as rejected:
            await self.deadletters.send(raw, rejected.reason, rejected.reason_class)
            return
        if not await self.seen.claim_content(content_fingerprint(record), event_id):
            self._duplicate("content")
            log.info("same content as an earlier record", extra={"record_id": record.record_id})
            return
        cleaned = self.cleaner.clean(record)
        await self.out.publish(cleaned.record, event_id=derived_event_id("clean", event_id), key=record.patient)
        await self.seen.remember(event_id)
        self.clean_metrics.emitted(cleaned)
        self.metrics.counted("emitted")

    def _duplicate(self, kind: str) -> None:
        self.clean_metrics.duplicates.labels(kind).inc()
        self.metrics.counted("duplicate")
