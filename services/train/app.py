"""train wiring: ``records.clean`` (into the Parquet training store) and ``train.requests`` in, ``models.released``
out. Training runs in a worker process; the request's offset is committed once its cards are acknowledged."""

from __future__ import annotations

from services.train.adapters.store import STORE_FOLDER, ParquetTrainingStore
from services.train.adapters.worker import ProcessTrainingWorker
from services.train.handlers import StoreCleanRecord, TrainRequested
from services.train.metrics import TrainMetrics
from services.train.task_catalog import TaskCatalog
from shared.registry import registry_root
from shared.schemas import CleanRecord
from shared.schemas.models import ModelCard, TrainRequest
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def create_service(settings: Settings | None = None) -> Service:
    service = Service("train", settings)
    settings = service.settings
    cards = service.publisher(
        Topic.MODELS_RELEASED,
        entity="model",
        verb="released",
        schema=ModelCard,
        description="Model cards of released, promoted and retired models.",
    )
    requests = service.publisher(
        Topic.TRAIN_REQUESTS,
        entity="train",
        verb="requested",
        schema=TrainRequest,
        description="Retraining asked for by the retrain policy (AIMASS_TRAIN_RETRAIN_AFTER).",
    )
    store = ParquetTrainingStore(settings.data_path / STORE_FOLDER)
    catalog = TaskCatalog(settings.tasks_dir)
    worker = ProcessTrainingWorker(settings.tasks_dir, store.root, registry_root(settings))
    train_metrics = TrainMetrics(service.metrics.registry)
    store_clean = StoreCleanRecord(store, catalog, train_metrics, requests, settings.train_retrain_after)
    train_requested = TrainRequested(store, catalog, worker, cards, train_metrics)
    service.details["training"] = lambda: {"busy": worker.busy, "tasks": sorted(catalog.tasks())}

    @service.on_startup
    async def count_store() -> None:
        store.compact()
        for (task, hospital), count in store.counts().items():
            train_metrics.store_records.labels(task, train_metrics.site(hospital)).set(count)

    @service.on_shutdown
    async def stop_worker() -> None:
        worker.close()
        store.compact()

    service.consume(
        Topic.RECORDS_CLEAN,
        read=CleanRecord,
        handle=store_clean,
        batch=False,
        description="Clean records, materialized into the training store.",
    )
    service.consume(
        Topic.TRAIN_REQUESTS,
        read=TrainRequest,
        handle=train_requested,
        batch=False,
        description="Requests to train a task, per site or pooled.",
    )
    return service
