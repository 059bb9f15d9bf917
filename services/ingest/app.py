"""ingest wiring: ``ingest.raw`` → ``records.ingested`` (+ ``deadletter``)."""

from __future__ import annotations

from faststream.kafka.annotations import KafkaMessage

from services.ingest.handlers import IngestRaw
from services.ingest.keys import load_pseudonym_key
from services.ingest.pseudonym import Pseudonymizer
from shared.schemas import CanonicalRecord
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def create_service(settings: Settings | None = None) -> Service:
    service = Service("ingest", settings)
    records = service.publisher(
        Topic.RECORDS_INGESTED, entity="record", verb="ingested", schema=CanonicalRecord,
        description="One pseudonymized canonical record per patient encounter.",
    )
    handle = IngestRaw(
        records,
        service.deadletters,
        Pseudonymizer(load_pseudonym_key(service.settings)),
        service.metrics,
        service.settings.max_message_bytes,
    )

    @service.subscriber(Topic.INGEST_RAW, description="Hospital documents: FHIR, HL7 v2, CSV, JSON, DICOM.")
    async def on_raw(message: KafkaMessage) -> None:
        await handle(message.raw_message)

    return service
