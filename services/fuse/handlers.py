"""fuse's service layer: a prediction joins its record's join; a complete or due join is fused and emitted once.

Delivery: a prediction's offset is committed after ``on_prediction`` returns. If the process dies before, the
prediction is re-delivered and found a duplicate, and the completeness check runs again, so a join completed by
a prediction whose processing was cut short still gets fused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from services.fuse.directory import ModelDirectory
from services.fuse.join import Arrival, fuse, is_complete
from services.fuse.metrics import FuseMetrics
from services.fuse.store import JoinKey, JoinStore
from shared.errors import RejectedInput
from shared.events import EventPublisher
from shared.metrics import ServiceMetrics
from shared.schemas.models import ModelCard
from shared.schemas.predictions import Prediction
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
        out: EventPublisher,
        metrics: ServiceMetrics,
        fuse_metrics: FuseMetrics,
        clock: Clock = time.time,
    ) -> None:
        self.tasks = tasks
        self.directory = directory
        self.store = store
        self.out = out
        self.metrics = metrics
        self.fuse_metrics = fuse_metrics
        self.clock = clock

    def task(self, name: str) -> TaskSpec:
        spec = self.tasks.get(name)
        if spec is None:
            raise RejectedInput(f"prediction for task {name!r}, which has no task file among: "
                                f"{', '.join(sorted(self.tasks)) or 'none'}", "unknown_task")
        return spec

    async def on_prediction(self, prediction: Prediction) -> None:
        spec = self.task(prediction.task)
        key = JoinKey(prediction.task, prediction.record_id)
        now = self.clock()
        added = await self.store.add(key, prediction.model.site, prediction.model_dump_json(), now=now,
                                     deadline=now + spec.fusion.deadline_seconds)
        if added.arrival is Arrival.LATE:
            self.fuse_metrics.late.labels(prediction.task).inc()
            self.metrics.counted("late")
            return
        if added.arrival is Arrival.DUPLICATE:
            self.metrics.counted("duplicate")
        if is_complete(added.sites, self.directory.expected(prediction.task)):
            await self.emit(key)

    def on_model(self, card: ModelCard) -> None:
        self.directory.apply(card)

    async def emit(self, key: JoinKey) -> bool:
        """Fuse and publish ``key`` if this caller wins its claim; ``True`` when it did."""
        claimed = await self.store.claim(key, now=self.clock())
        if claimed is None:
            return False
        spec = self.tasks.get(key.task)
        predictions = [Prediction.model_validate_json(p) for p in claimed.payloads.values()]
        if spec is None or not predictions:  # a task file removed while its join was open: nothing sane to emit
            log.warning("join dropped: task without a task file or join without predictions",
                        extra={"task": key.task})
            await self.store.emitted(key)
            return False
        expected = self.directory.expected(key.task)
        outcome = fuse(spec.fusion, predictions, expected, self.directory.card)
        result = outcome.result
        await self.out.publish(result, event_id=derived_event_id("fuse", key.record_id, key.task),
                               key=result.patient)
        await self.store.emitted(key)
        timed_out = not is_complete(claimed.payloads, expected)
        self._count(spec, outcome.missing, timed_out, result.needs_review, claimed.first_seen)
        return True

    def _count(self, spec: TaskSpec, missing: list[str], timed_out: bool, needs_review: bool,
               first_seen: float) -> None:
        task = spec.name
        self.fuse_metrics.results.labels(task, spec.fusion.method).inc()
        self.fuse_metrics.join_wait.observe(max(self.clock() - first_seen, 0.0))
        if timed_out:
            self.fuse_metrics.timeouts.labels(task).inc()
        if missing:
            self.fuse_metrics.missing_models.labels(task).inc(len(missing))
        if needs_review:
            self.fuse_metrics.needs_review.labels(task).inc()
        self.metrics.counted("emitted")
