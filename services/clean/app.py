"""clean wiring: ``records.ingested`` → ``records.clean`` (+ ``deadletter``)."""

from __future__ import annotations

from faststream.kafka.annotations import KafkaMessage

from services.clean.handlers import CleanIngested
from services.clean.seen import RedisSeenEvents
from shared.schemas import CleanRecord
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def create_service(settings: Settings | None = None) -> Service:
    service = Service("clean", settings)
    out = service.publisher(
        Topic.RECORDS_CLEAN, entity="record", verb="cleaned", schema=CleanRecord,
        description="Canonical records, de-duplicated, with quality flags and per-task feature vectors.",
    )
    seen = RedisSeenEvents(service.redis, "clean", service.settings.dedup_ttl_seconds)
    handle = CleanIngested(out, service.deadletters, seen, service.metrics)

    @service.subscriber(Topic.RECORDS_INGESTED, description="Pseudonymized canonical records from ingest.")
    async def on_ingested(message: KafkaMessage) -> None:
        await handle(message.raw_message)

    return service
