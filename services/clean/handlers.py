"""clean's subscriber logic, one batch at a time. Remember events only after their outputs were acknowledged: a
crash in between re-emits under the same derived ids, which downstream de-duplication absorbs; remembering first
could lose them. The batch returns (and its offsets are committed) only after every output and dead letter was
acknowledged; any error raises, so the whole batch comes again."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence

from aiokafka import ConsumerRecord

from services.clean.cleaning import Cleaned, Cleaner
from services.clean.dedup import Candidate, Verdict
from services.clean.fingerprint import content_fingerprint
from services.clean.metrics import CleanMetrics
from services.clean.seen import SeenEvents
from shared.errors import RejectedInput, parse_event
from shared.events import DeadLetters, EventPublisher, confirmed
from shared.metrics import ServiceMetrics
from shared.schemas import CanonicalRecord
from shared.topics import derived_event_id, event_id_of

log = logging.getLogger("aimass.clean")


class CleanIngested:
    def __init__(
        self,
        out: EventPublisher,
        deadletters: DeadLetters,
        seen: SeenEvents,
        cleaner: Cleaner,
        metrics: ServiceMetrics,
        clean_metrics: CleanMetrics,
    ) -> None:
        self.out = out
        self.deadletters = deadletters
        self.seen = seen
        self.cleaner = cleaner
        self.metrics = metrics
        self.clean_metrics = clean_metrics

    async def __call__(self, raws: Sequence[ConsumerRecord]) -> None:
        pending: list[Awaitable[object] | None] = []
        accepted: list[tuple[str, CanonicalRecord]] = []
        for raw in raws:
            try:
                accepted.append((event_id_of(raw), parse_event(raw.value, CanonicalRecord, raw.topic)))
            except RejectedInput as rejected:
                pending.append(await self.deadletters.enqueue(raw, rejected.reason, rejected.reason_class))
        judged = await self.seen.judge([Candidate(event_id, content_fingerprint(r)) for event_id, r in accepted])
        emitted: list[tuple[str, Cleaned]] = []
        for (event_id, record), verdict in zip(accepted, judged, strict=True):
            if verdict is Verdict.NEW:
                cleaned = self.cleaner.clean(record)
                pending.append(
                    await self.out.enqueue(
                        cleaned.record, event_id=derived_event_id("clean", event_id), key=record.patient
                    )
                )
                emitted.append((event_id, cleaned))
        await confirmed(pending)
        await self.seen.remember([event_id for event_id, _ in emitted])
        self._count(accepted, judged, [cleaned for _, cleaned in emitted])

    def _count(
        self, accepted: Sequence[tuple[str, CanonicalRecord]], judged: Sequence[Verdict], emitted: Sequence[Cleaned]
    ) -> None:
        """After the batch succeeded, so a batch that comes again is not counted twice."""
        for (_, record), verdict in zip(accepted, judged, strict=True):
            if verdict is not Verdict.NEW:
                self.clean_metrics.duplicates.labels(verdict.value).inc()
                self.metrics.counted("duplicate")
            if verdict is Verdict.CONTENT:
                log.info("same content as an earlier record", extra={"record_id": record.record_id})
        for cleaned in emitted:
            self.clean_metrics.emitted(cleaned)
        if emitted:
            self.metrics.counted("emitted", len(emitted))
