"""clean's subscriber logic, one batch at a time. Remember events only after their outputs were acknowledged: a
crash in between re-emits under the same derived ids, which downstream de-duplication absorbs; remembering first
could lose them. Any error raises, so the whole batch comes again."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.clean.cleaning import Cleaned, Cleaner
from services.clean.dedup import Candidate, Verdict
from services.clean.fingerprint import content_fingerprint
from services.clean.metrics import CleanMetrics
from services.clean.ports import SeenEvents
from shared.intake import Batch
from shared.ports import Publisher
from shared.schemas import CanonicalRecord
from shared.topics import derived_event_id

log = logging.getLogger("aimass.clean")


@dataclass
class CleanIngested:
    out: Publisher
    seen: SeenEvents
    cleaner: Cleaner
    metrics: CleanMetrics

    async def __call__(self, batch: Batch[CanonicalRecord]) -> None:
        judged = await self.seen.judge([Candidate(item.event_id, content_fingerprint(item.event)) for item in batch])
        emitted: list[tuple[str, Cleaned]] = []
        for item, verdict in zip(batch, judged, strict=True):
            if verdict is not Verdict.NEW:
                continue
            cleaned = self.cleaner.clean(item.event)
            event_id = derived_event_id("clean", item.event_id)
            await batch.send(self.out, cleaned.record, event_id=event_id, key=item.event.patient)
            emitted.append((item.event_id, cleaned))
        await batch.confirm()
        await self.seen.remember([event_id for event_id, _ in emitted])
        self._count(batch, judged, [cleaned for _, cleaned in emitted])

    def _count(self, batch: Batch[CanonicalRecord], judged: list[Verdict], emitted: list[Cleaned]) -> None:
        """After the outputs were acknowledged and remembered, so a batch that comes again is not counted twice."""
        for item, verdict in zip(batch, judged, strict=True):
            if verdict is not Verdict.NEW:
                self.metrics.duplicates.labels(verdict.value).inc()
                batch.count("duplicate")
            if verdict is Verdict.CONTENT:
                log.info("same content as an earlier record", extra={"record_id": item.event.record_id})
        for cleaned in emitted:
            self.metrics.emitted(cleaned)
        batch.count("emitted", len(emitted))
