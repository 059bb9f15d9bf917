"""train's subscriber logic: clean records into the store, training requests to the worker, cards out."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from services.train.failures import ParityError, TrainerDied
from services.train.metrics import TrainMetrics
from services.train.ports import Appended, StoredRecord, TrainingStore, TrainingWorker
from services.train.task_catalog import TaskCatalog
from shared.errors import RejectedInput
from shared.intake import Accepted, Batch
from shared.ports import Publisher
from shared.schemas import CleanRecord
from shared.schemas.models import TrainRequest
from shared.tasks import TaskSpec, feature_vector, label_of
from shared.topics import derived_event_id

log = logging.getLogger("aimass.train")


def stored_record(record: CleanRecord, task: TaskSpec) -> StoredRecord:
    """clean's feature vector for the task when it computed one; otherwise the task file's own reading of it."""
    computed = record.features.get(task.name)
    if computed is not None and list(computed.names) == task.feature_names:
        values, label = list(computed.values), computed.label
    else:
        values, label = feature_vector(record, task), None
    if label is None:
        label = label_of(record, task)
    return StoredRecord(
        record_id=record.record_id,
        patient=record.patient,
        hospital=record.hospital,
        received_at=record.received_at.isoformat(),
        feature_names=task.feature_names,
        values=values,
        label=label,
    )


@dataclass
class StoreCleanRecord:
    """Materializes each clean record once per task; asks for a pooled retraining after ``retrain_after`` new
    labelled records of a task (0 = never)."""

    store: TrainingStore
    catalog: TaskCatalog
    metrics: TrainMetrics
    requests: Publisher | None = None
    retrain_after: int = 0
    new_labelled: Counter[str] = field(default_factory=Counter)

    async def __call__(self, batch: Batch[CleanRecord]) -> None:
        for item in batch:
            await self.store_record(item.event, item.event_id, batch)

    async def store_record(self, record: CleanRecord, event_id: str, batch: Batch[CleanRecord]) -> None:
        labelled = []
        hospital = self.metrics.site(record.hospital)
        for task in self.catalog.tasks().values():
            row = stored_record(record, task)
            appended = await self.store.append(task.name, row)
            if appended is Appended.DUPLICATE:
                continue
            labelled.append((task.name, row.label is not None))
            if appended is Appended.COMPACTED:  # exact again: duplicates are gone
                self.metrics.store_records.labels(task.name, hospital).set(self.store.rows(task.name, record.hospital))
            else:
                self.metrics.store_records.labels(task.name, hospital).inc()
        for task_name, has_label in labelled:
            if has_label:
                await self._count_for_retraining(task_name, event_id, batch)
        batch.count("stored" if labelled else "duplicate")

    async def _count_for_retraining(self, task: str, event_id: str, batch: Batch[CleanRecord]) -> None:
        if not self.retrain_after or self.requests is None:
            return
        self.new_labelled[task] += 1
        if self.new_labelled[task] >= self.retrain_after:
            self.new_labelled[task] = 0
            request = TrainRequest(task=task, requested_by="retrain-policy")
            await batch.send(self.requests, request, event_id=derived_event_id("train", event_id, "retrain"), key=task)


@dataclass
class TrainRequested:
    """Validates the request, compacts the store, trains in the worker, publishes every changed card."""

    store: TrainingStore
    catalog: TaskCatalog
    worker: TrainingWorker
    cards: Publisher
    metrics: TrainMetrics

    async def __call__(self, batch: Batch[TrainRequest]) -> None:
        for item in batch:
            await self.train(item, batch)

    async def train(self, item: Accepted[TrainRequest], batch: Batch[TrainRequest]) -> None:
        request = item.event
        site = request.site or "pooled"
        task = "?"  # a task no file defines keeps its name out of the metric labels
        started = time.monotonic()
        try:
            if self.catalog.get(request.task) is None:
                raise RejectedInput(
                    f"train request names task {request.task!r}, which no task file in "
                    f"{self.catalog.directory} defines",
                    "unknown_task",
                )
            task = request.task
            await self.store.compacted(request.task)
            released = await self.worker.train(request.task, request.site)
        except RejectedInput as rejected:
            self._ran(task, site, "rejected")
            await batch.reject(item.record, rejected)
            return
        except ParityError as failed:
            self._ran(task, site, "failed")
            await batch.reject(
                item.record, RejectedInput(f"training of {task}/{site} not released: {failed}", "parity")
            )
            return
        except TrainerDied as died:
            self._ran(task, site, "failed")
            await batch.reject(item.record, RejectedInput(str(died), "trainer_died"))
            return
        self.metrics.duration.labels(task).observe(time.monotonic() - started)
        for card in released:
            event_id = derived_event_id("train", item.event_id, card.site, card.version, card.status)
            await batch.send(self.cards, card, event_id=event_id, key=f"{card.task}/{card.site}")
        await batch.confirm()
        self._ran(task, site, "released")
        batch.count("emitted")
        log.info("released", extra={"task": task, "site": site, "version": released[-1].version})

    def _ran(self, task: str, site: str, outcome: str) -> None:
        self.metrics.runs.labels(task, self.metrics.site(site), outcome).inc()
