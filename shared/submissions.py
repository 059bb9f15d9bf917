"""A hospital's document written to the contract topic ``ingest.raw`` by a platform door, where the stream reads it
like any other: ingest's front doors (MLLP listeners, FHIR REST intake) and report's questioning page (an answer to
a question, as an observation of the hospital whose clinician gave it).

A door names the hospital by how it was reached (the MLLP port, the token's or the signed link's ``hospital``) and
writes ``ce_source`` itself; the producer is FastStream's (``acks=all``, idempotent).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from faststream.kafka import KafkaBroker

from shared.ports import Pending, RawDocuments

__all__ = ["SUBMITTED", "RawDocuments", "RawTopic", "submission_headers"]
from shared.topics import CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TIME, CE_TYPE, CONTENT_TYPE

SUBMITTED = "org.aimass.document.submitted.v1"  # what ``aimass publish`` stamps on a hospital's document too
DESCRIPTION = (
    "Hospital documents: FHIR, HL7 v2, CSV, XLSX, JSON, DICOM, as the hospital sent them. Written by the platform's "
    "own principals (aimass publish, replay), by ingest's front doors (MLLP listeners, FHIR REST intake), which "
    "set ce_source to the hospital the MLLP port or the access token names, and by report's questioning page (a "
    "clinician's answer, as the result's hospital); each hospital also has its own ingest.raw.<hospital>."
)


def submission_headers(hospital: str, event_id: str, content_type: str, now: datetime) -> dict[str, str]:
    return {
        CE_SPECVERSION: "1.0",
        CE_ID: event_id,
        CE_SOURCE: hospital,
        CE_TYPE: SUBMITTED,
        CE_TIME: now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        CONTENT_TYPE: content_type,
    }


class RawTopic:
    """``ingest.raw``'s producer for a door; ``enqueue``'s result is awaited for the broker's acknowledgement."""

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self.topic = topic
        self._publisher = broker.publisher(topic, description=DESCRIPTION)

    async def enqueue(self, document: bytes, headers: Mapping[str, str], key: str) -> Pending:
        return await self._publisher.publish(document, key=key.encode(), headers=dict(headers), no_confirm=True)
