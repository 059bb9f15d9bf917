"""fuse's service layer: predictions join their record's join; a complete or due join is fused and emitted once.

Work goes a consumed batch at a time: one store call adds every prediction of the batch, one claims the joins they
completed, one publish waits for all their fused results, one store call closes them. Delivery: the batch's offsets
are committed after ``on_predictions`` returns. If the process dies before, the batch is re-delivered, its
predictions are found duplicates, and the completeness check runs again, so a join completed by a batch whose
processing was cut short still gets fused.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from services.fuse.directory import ModelDirectory
from services.fuse.join import Arrival, fuse, is_complete
from services.fuse.metrics import FuseMetrics
from services.fuse.ports import Arriving, JoinKey, JoinStore
from shared.errors import RejectedInput
from shared.intake import Batch
from shared.ports import Publisher
from shared.schemas.models import ModelCard
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.tasks import TaskSpec
from shared.topics import derived_event_id

log = logging.getLogger("aimass.fuse")
Clock = Callable[[], float]


class Fuser:
    def __init__(
        self,
        tasks: Mapping[str, TaskSpec],
        directory: ModelDirectory,
        store: JoinStore,
        out: Publisher,
        metrics: FuseMetrics,
        clock: Clock = time.time,
    ) -> None:
        self.tasks = tasks
        self.directory = directory
        self.store = store
        self.out = out
        self.metrics = metrics
        self.clock = clock

    def task(self, name: str) -> TaskSpec:
        """The task's file; ``RejectedInput`` for a task this deployment has none for."""
        spec = self.tasks.get(name)
        if spec is None:
            raise RejectedInput(
                f"prediction for task {name!r}, which has no task file among: "
                f"{', '.join(sorted(self.tasks)) or 'none'}",
                "unknown_task",
            )
        return spec

    def check(self, prediction: Prediction) -> None:
        """What the intake dead-letters beyond the schema: a prediction for a task without a task file."""
        self.task(prediction.task)

    async def __call__(self, batch: Batch[Prediction]) -> None:
        await self.on_predictions(batch.events)

    async def on_predictions(self, predictions: Sequence[Prediction]) -> None:
        """Add a batch of predictions (their tasks known: see ``task``) and emit the joins they complete."""
        if not predictions:
            return
        now = self.clock()
        arriving = [
            Arriving(
                JoinKey(p.task, p.record_id),
                p.model.site,
                p.model_dump_json(),
                now + self.task(p.task).fusion.deadline_seconds,
            )
            for p in predictions
        ]
        added = await self.store.add_many(arriving, now=now)
        complete: dict[JoinKey, None] = {}
        for prediction, item, stored in zip(predictions, arriving, added, strict=True):
            if stored.arrival is Arrival.LATE:
                self.metrics.late.labels(prediction.task).inc()
                self.metrics.counted("late")
                continue
            if stored.arrival is Arrival.DUPLICATE:
                self.metrics.counted("duplicate")
            if is_complete(stored.sites, self.directory.expected(prediction.task)):
                complete[item.key] = None
        await self.emit_many(list(complete))

    def on_model(self, card: ModelCard) -> None:
        self.directory.apply(card)

    async def on_cards(self, batch: Batch[ModelCard]) -> None:
        for card in batch.events:
            self.on_model(card)

    async def emit_many(self, keys: Sequence[JoinKey]) -> int:
        """Fuse and publish the joins among ``keys`` this caller wins the claim of; how many it published."""
        claims = await self.store.claim_many(keys, now=self.clock())
        if not claims:
            return 0
        closed: list[JoinKey] = []
        results: list[tuple[FusedPrediction, str, str | None]] = []
        counts = []
        for key, claimed in claims.items():
            closed.append(key)
            spec = self.tasks.get(key.task)
            predictions = [Prediction.model_validate_json(p) for p in claimed.payloads.values()]
            if spec is None or not predictions:  # a task file removed while its join was open: nothing sane to emit
                log.warning(
                    "join dropped: task without a task file or join without predictions", extra={"task": key.task}
                )
                continue
            expected = self.directory.expected(key.task)
            fused = fuse(spec.fusion, predictions, expected, self.directory.card)
            result = fused.result
            results.append((result, derived_event_id("fuse", key.record_id, key.task), result.patient))
            counts.append(
                (
                    spec,
                    fused.missing,
                    not is_complete(claimed.payloads, expected),
                    result.needs_review,
                    claimed.first_seen,
                )
            )
        try:
            await self.out.publish_many(results)
        except Exception:
            with contextlib.suppress(Exception):  # Redis may be what failed: then the leases run out instead
                await self.store.release_many(closed, now=self.clock())
            raise
        await self.store.emitted_many(closed)
        for count in counts:
            self._count(*count)
        return len(results)

    def _count(
        self, spec: TaskSpec, missing: list[str], timed_out: bool, needs_review: bool, first_seen: float
    ) -> None:
        task = spec.name
        self.metrics.results.labels(task, spec.fusion.method).inc()
        self.metrics.join_wait.observe(max(self.clock() - first_seen, 0.0))
        if timed_out:
            self.metrics.timeouts.labels(task).inc()
        if missing:
            self.metrics.missing_models.labels(task).inc(len(missing))
        if needs_review:
            self.metrics.needs_review.labels(task).inc()
        self.metrics.counted("emitted")
