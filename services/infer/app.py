"""infer wiring: ``records.clean`` (in batches) and ``models.released`` in, ``predictions`` out.

Every active model of a record's task scores it: one onnxruntime call per (batch, model), the Redis cache in
front, the predictions published and acknowledged before the batch's offsets are committed (at least once).
Models load from the registry at start and swap on ``models.released`` without a restart.
"""

from __future__ import annotations

import asyncio
import logging

from faststream.middlewares import AckPolicy

from services.infer.adapters.kafka_in import fast_tolerant_batch_parser
from services.infer.adapters.kafka_out import KafkaEventSender
from services.infer.adapters.onnx_runtime import OnnxLoader
from services.infer.adapters.redis_cache import RedisPredictionCache
from services.infer.adapters.registry_cards import RegistryCards
from services.infer.catalog import ModelCatalog
from services.infer.handlers import ApplyModelCard, ScoreCleanBatch
from services.infer.metrics import InferMetrics
from services.infer.ports import Scorer
from services.infer.routes import ScoreRoutes
from services.infer.scoring import ScoringInput
from shared.auth import SCOPE_PREDICT
from shared.errors import RejectedInput
from shared.schemas.models import ModelCard
from shared.schemas.predictions import Prediction
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic

log = logging.getLogger("aimass.infer")


def create_service(settings: Settings | None = None) -> Service:
    service = Service("infer", settings)
    settings = service.settings
    # Declared for the AsyncAPI document and the topic's schema; the hot path sends through KafkaEventSender.
    service.publisher(
        Topic.PREDICTIONS,
        entity="prediction",
        verb="made",
        schema=Prediction,
        description="One prediction per (record, model).",
    )
    sender = KafkaEventSender(
        settings, service.name, service.topic(Topic.PREDICTIONS), entity="prediction", verb="made"
    )
    service.producers.watch("predictions", sender.current, sender.renew)
    metrics = InferMetrics(service.metrics.registry)
    catalog: ModelCatalog[Scorer] = ModelCatalog()
    loader = OnnxLoader(settings)
    registry = RegistryCards(settings)
    cache = RedisPredictionCache(service.redis, settings.infer_cache_ttl_seconds)
    score = ScoreCleanBatch(catalog, cache, sender, metrics)
    apply_card = ApplyModelCard(catalog, loader, registry, metrics)
    scores = ScoreRoutes(catalog)
    service.http.post("/records/$score", scores.score, guard=service.gate.scoped(SCOPE_PREDICT))
    service.details["execution_provider"] = lambda: loader.providers[0]
    service.details["models"] = catalog.summary
    service.details["cache"] = cache.state

    @service.on_startup
    async def start() -> None:
        metrics.provider.labels(loader.providers[0]).set(1)
        log.info("onnxruntime provider", extra={"provider": loader.providers[0]})
        await sender.start()
        for card in await asyncio.to_thread(registry.active):
            try:
                await apply_card.load(card)
            except RejectedInput as rejected:
                log.error("model not loaded", extra={"task": card.task, "site": card.site, "reason": rejected.reason})

    @service.on_shutdown
    async def stop() -> None:
        await sender.stop()

    service.consume(
        Topic.RECORDS_CLEAN,
        read=ScoringInput,
        handle=score,
        max_records=settings.infer_batch_max_records,
        batch_timeout_ms=settings.infer_batch_timeout_ms,
        parser=fast_tolerant_batch_parser,
        description="Clean records with their per-task feature vectors, in batches.",
    )
    # Every replica needs every card (no consumer group); replaying old cards is harmless (see catalog.py).
    service.consume(
        Topic.MODELS_RELEASED,
        read=ModelCard,
        handle=apply_card,
        batch=False,
        group_id=None,
        ack_policy=AckPolicy.ACK_FIRST,
        description="Model cards: load, promote or retire models.",
    )
    return service
