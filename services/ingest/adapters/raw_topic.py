"""Adapter: ingest's own doors write a hospital's document to the contract topic ``ingest.raw`` (FastStream's
producer, ``acks=all``, idempotent), where the stream reads it like any other."""

from __future__ import annotations

from collections.abc import Mapping

from faststream.kafka import KafkaBroker

from shared.ports import Pending

DESCRIPTION = (
    "Hospital documents: FHIR, HL7 v2, CSV, XLSX, JSON, DICOM, as the hospital sent them. Written by the platform's "
    "own principals (aimass publish, replay) and by ingest's front doors (MLLP listeners, FHIR REST intake), which "
    "set ce_source to the hospital the MLLP port or the access token names; each hospital also has its own "
    "ingest.raw.<hospital>."
)


class RawTopic:
    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self.topic = topic
        self._publisher = broker.publisher(topic, description=DESCRIPTION)

    async def enqueue(self, document: bytes, headers: Mapping[str, str], key: str) -> Pending:
        return await self._publisher.publish(document, key=key.encode(), headers=dict(headers), no_confirm=True)
