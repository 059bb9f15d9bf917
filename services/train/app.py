"""train wiring: ``records.clean`` and ``train.requests`` in, ``models.released`` out.

This first version receives and validates both inputs; training itself arrives with the train issue.
"""

from __future__ import annotations

from faststream.kafka.annotations import KafkaMessage

from shared.schemas import CleanRecord
from shared.schemas.models import ModelCard, TrainRequest
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def create_service(settings: Settings | None = None) -> Service:
    service = Service("train", settings)
    service.publisher(Topic.MODELS_RELEASED, entity="model", verb="released", schema=ModelCard,
                      description="Model cards of released, promoted and retired models.")

    @service.subscriber(Topic.RECORDS_CLEAN, description="Clean records, materialized into the training store.")
    async def on_clean(message: KafkaMessage) -> None:
        await service.accept(message.raw_message, CleanRecord)

    @service.subscriber(Topic.TRAIN_REQUESTS, description="Requests to train a task, per site or pooled.")
    async def on_request(message: KafkaMessage) -> None:
        await service.accept(message.raw_message, TrainRequest)

    return service
