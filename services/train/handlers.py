"""train's subscriber logic: clean records into the store, training requests to the worker, cards out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Protocol

from aiokafka import ConsumerRecord

from services.train.adapters.store import COMPACT_AFTER_ROWS, ParquetTrainingStore, StoredRecord
from services.train.failures import ParityError, TrainerDied
from services.train.metrics import TrainMetrics
from services.train.task_catalog import TaskCatalog
from shared.errors import RejectedInput, parse_event
from shared.events import DeadLetters, EventPublisher
from shared.metrics import ServiceMetrics
from shared.schemas import CleanRecord
from shared.schemas.models import ModelCard, TrainRequest
from shared.tasks import TaskSpec, feature_vector, label_of
from shared.topics import derived_event_id, event_id_of

log = logging.getLogger("aimass.train")


class TrainingWorker(Protocol):
    async def train(self, task: str, site: str | None) -> list[ModelCard]: ...


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


class StoreCleanRecord:
    """Materializes each clean record once per task; asks for a pooled retraining after ``retrain_after`` new
    labelled records of a task (0 = never).

    ``store_lock`` is held while appending, and by ``TrainRequested`` while it compacts in a thread: compaction
    reads the inbox and then removes it, so a row appended in between would be lost."""

    def __init__(
        self,
        store: ParquetTrainingStore,
        catalog: TaskCatalog,
        deadletters: DeadLetters,
        metrics: ServiceMetrics,
        train_metrics: TrainMetrics,
        requests: EventPublisher | None,
        store_lock: asyncio.Lock,
        retrain_after: int = 0,
    ) -> None:
        self.store, self.catalog, self.deadletters = store, catalog, deadletters
        self.metrics, self.train_metrics, self.requests = metrics, train_metrics, requests
        self.store_lock, self.retrain_after = store_lock, retrain_after
        self.new_labelled: Counter[str] = Counter()

    async def __call__(self, raw: ConsumerRecord) -> None:
        try:
            record = parse_event(raw.value, CleanRecord, raw.topic)
        except RejectedInput as rejected:
            await self.deadletters.send(raw, rejected.reason, rejected.reason_class)
            return
        labelled = []
        hospital = self.train_metrics.site(record.hospital)
        async with self.store_lock:
            for task in self.catalog.tasks().values():
                row = stored_record(record, task)
                if not self.store.add(task.name, row):
                    continue
                labelled.append((task.name, row.label is not None))
                if self.store.inbox_rows(task.name, record.hospital) < COMPACT_AFTER_ROWS:
                    self.train_metrics.store_records.labels(task.name, hospital).inc()
                    continue
                await asyncio.to_thread(self.store.compact, task.name, record.hospital)
                rows = self.store.rows(task.name, record.hospital)  # exact again: duplicates are gone
                self.train_metrics.store_records.labels(task.name, hospital).set(rows)
        for task_name, has_label in labelled:
            if has_label:
                await self._count_for_retraining(task_name, event_id_of(raw))
        self.metrics.counted("stored" if labelled else "duplicate")

    async def _count_for_retraining(self, task: str, event_id: str) -> None:
        if not self.retrain_after or self.requests is None:
            return
        self.new_labelled[task] += 1
        if self.new_labelled[task] >= self.retrain_after:
            self.new_labelled[task] = 0
            request = TrainRequest(task=task, requested_by="retrain-policy")
            await self.requests.publish(request, event_id=derived_event_id("train", event_id, "retrain"), key=task)


class TrainRequested:
    """Validates the request, compacts the store, trains in the worker, publishes every changed card."""

    def __init__(
        self,
        store: ParquetTrainingStore,
        catalog: TaskCatalog,
        worker: TrainingWorker,
        cards: EventPublisher,
        deadletters: DeadLetters,
        metrics: ServiceMetrics,
        train_metrics: TrainMetrics,
        store_lock: asyncio.Lock,
    ) -> None:
        self.store, self.catalog, self.worker, self.cards = store, catalog, worker, cards
        self.deadletters, self.metrics, self.train_metrics = deadletters, metrics, train_metrics
        self.store_lock = store_lock

    async def __call__(self, raw: ConsumerRecord) -> None:
        site = "?"
        task = "?"
        started = time.monotonic()
        try:
            request = parse_event(raw.value, TrainRequest, raw.topic)
            site = request.site or "pooled"
            if self.catalog.get(request.task) is None:  # its name stays out of the metric labels ("?")
                raise RejectedInput(
                    f"train request names task {request.task!r}, which no task file in "
                    f"{self.catalog.directory} defines",
                    "unknown_task",
                )
            task = request.task
            async with self.store_lock:  # reading and writing Parquet takes seconds on a large inbox: off the loop
                await asyncio.to_thread(self.store.compact, request.task)
            released = await self.worker.train(request.task, request.site)
        except RejectedInput as rejected:
            self._ran(task, site, "rejected")
            await self.deadletters.send(raw, rejected.reason, rejected.reason_class)
            return
        except ParityError as failed:
            self._ran(task, site, "failed")
            await self.deadletters.send(raw, f"training of {task}/{site} not released: {failed}", "parity")
            return
        except TrainerDied as died:
            self._ran(task, site, "failed")
            await self.deadletters.send(raw, str(died), "trainer_died")
            return
        self.train_metrics.duration.labels(task).observe(time.monotonic() - started)
        parent = event_id_of(raw)
        await self.cards.publish_many(
            [
                (
                    card,
                    derived_event_id("train", parent, card.site, card.version, card.status),
                    f"{card.task}/{card.site}",
                )
                for card in released
            ]
        )
        self._ran(task, site, "released")
        self.metrics.counted("emitted")
        log.info("released", extra={"task": task, "site": site, "version": released[-1].version})

    def _ran(self, task: str, site: str, outcome: str) -> None:
        self.train_metrics.runs.labels(task, self.train_metrics.site(site), outcome).inc()
