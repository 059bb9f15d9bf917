"""infer wiring: ``records.clean`` and ``models.released`` in, ``predictions`` out.

This first version receives and validates both inputs; serving arrives with the infer issue.
"""

from __future__ import annotations

from faststream.kafka.annotations import KafkaMessage

from shared.schemas import CleanRecord
from shared.schemas.models import ModelCard
from shared.schemas.predictions import Prediction
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def create_service(settings: Settings | None = None) -> Service:
    service = Service("infer", settings)
    service.publisher(Topic.PREDICTIONS, entity="prediction", verb="made", schema=Prediction,
                      description="One prediction per (record, model).")

    @service.subscriber(Topic.RECORDS_CLEAN, description="Clean records with their per-task feature vectors.")
    async def on_clean(message: KafkaMessage) -> None:
        await service.accept(message.raw_message, CleanRecord)

    @service.subscriber(Topic.MODELS_RELEASED, group_id="aimass-infer-models",
                        description="Model cards: load, promote or retire models.")
    async def on_model(message: KafkaMessage) -> None:
        await service.accept(message.raw_message, ModelCard)

    return service
