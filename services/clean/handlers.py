"""clean's subscriber logic. Remember an event only after its output was acknowledged: a crash in between
re-emits under the same derived id, which downstream de-duplication absorbs; remembering first could lose it."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from services.clean.cleaning import clean
from services.clean.seen import SeenEvents
from shared.errors import RejectedInput, parse_event
from shared.events import DeadLetters, EventPublisher
from shared.metrics import ServiceMetrics
from shared.schemas import CanonicalRecord
from shared.topics import CE_ID, decode_headers, derived_event_id, header


class CleanIngested:
    def __init__(
        self, out: EventPublisher, deadletters: DeadLetters, seen: SeenEvents, metrics: ServiceMetrics
    ) -> None:
        self.out = out
        self.deadletters = deadletters
        self.seen = seen
        self.metrics = metrics

    async def __call__(self, raw: ConsumerRecord) -> None:
        event_id = header(decode_headers(raw.headers), CE_ID) or f"{raw.topic}/{raw.partition}/{raw.offset}"
        if await self.seen.seen(event_id):
            self.metrics.counted("duplicate")
            return
        try:
            record = clean(parse_event(raw.value, CanonicalRecord, raw.topic))
        except RejectedInput as rejected:
            await self.deadletters.send(raw, rejected.reason, rejected.reason_class)
            return
        await self.out.publish(record, event_id=derived_event_id("clean", event_id), key=record.patient)
        await self.seen.remember(event_id)
        self.metrics.counted("emitted")
