"""fuse wiring: ``predictions`` and ``models.released`` in, ``predictions.fused`` out.

This first version receives and validates both inputs; fusion arrives with the fuse issue.
"""

from __future__ import annotations

from faststream.kafka.annotations import KafkaMessage

from shared.schemas.models import ModelCard
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def create_service(settings: Settings | None = None) -> Service:
    service = Service("fuse", settings)
    service.publisher(Topic.PREDICTIONS_FUSED, entity="prediction", verb="fused", schema=FusedPrediction,
                      description="One fused, verified result per (record, task).")

    @service.subscriber(Topic.PREDICTIONS, description="Single-model predictions from infer.")
    async def on_prediction(message: KafkaMessage) -> None:
        await service.accept(message.raw_message, Prediction)

    @service.subscriber(Topic.MODELS_RELEASED, group_id="aimass-fuse-models",
                        description="Model cards: which models a task's fusion waits for, and their weights.")
    async def on_model(message: KafkaMessage) -> None:
        await service.accept(message.raw_message, ModelCard)

    return service
