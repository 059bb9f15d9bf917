"""fuse wiring: ``predictions`` (in batches) and ``models.released`` in, ``predictions.fused`` out, a sweeper beside.

The expected models come from the registry at start, then from ``models.released``, which every replica reads
whole (no consumer group: each replica needs every card, and reading from the beginning rebuilds the state).
"""

from __future__ import annotations

from faststream.middlewares import AckPolicy

from services.fuse.adapters.redis_joins import RedisJoinStore
from services.fuse.directory import ModelDirectory
from services.fuse.handlers import Fuser
from services.fuse.metrics import FuseMetrics
from services.fuse.routes import FuseRoutes
from services.fuse.sweeper import DeadlineSweeper
from shared.auth import SCOPE_PREDICT
from shared.registry import list_cards
from shared.schemas.models import ModelCard
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.service import Service
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import Topic

# Up to 500 predictions per batch: three Redis calls and one wait for the broker's acks each. A batch waits at most
# 10 ms for more, so a lone prediction is not held back.
MAX_BATCH = 500
BATCH_TIMEOUT_MS = 10


def create_service(settings: Settings | None = None) -> Service:
    service = Service("fuse", settings)
    out = service.publisher(
        Topic.PREDICTIONS_FUSED,
        entity="prediction",
        verb="fused",
        schema=FusedPrediction,
        description="One fused, verified result per (record, task).",
    )
    directory = ModelDirectory()
    store = RedisJoinStore(service.redis, service.settings.topic_prefix, ttl_seconds=service.settings.dedup_ttl_seconds)
    tasks = load_tasks(service.settings.tasks_dir)
    fuser = Fuser(tasks, directory, store, out, FuseMetrics(service.metrics))
    routes = FuseRoutes(tasks, directory)
    service.http.post("/predictions/$fuse", routes.fuse, guard=service.gate.scoped(SCOPE_PREDICT))
    sweeper = DeadlineSweeper(store, fuser)
    service.details["expected_models"] = directory.summary

    @service.on_startup
    async def load_registry() -> None:
        for card in list_cards(service.settings):
            directory.apply(card)

    # The sweeper publishes, so it runs only while the broker is connected (FastStream's own hooks for that).
    @service.app.after_startup
    async def start_sweeper() -> None:
        sweeper.start()

    @service.app.on_shutdown
    async def stop_sweeper() -> None:
        await sweeper.stop()

    service.consume(
        Topic.PREDICTIONS,
        read=Prediction,
        check=fuser.check,
        handle=fuser,
        max_records=MAX_BATCH,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        description="Single-model predictions from infer, in batches.",
    )

    service.consume(
        Topic.MODELS_RELEASED,
        read=ModelCard,
        handle=fuser.on_cards,
        batch=False,
        group_id=None,
        ack_policy=AckPolicy.ACK_FIRST,
        description="Model cards: which models a task's fusion waits for, and their weights.",
    )
    return service
