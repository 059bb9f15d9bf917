"""Topic names and the Kafka headers of the contract (CloudEvents 1.0 binary mode, dead-letter headers)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum

from aiokafka import ConsumerRecord


class Topic(StrEnum):
    """Contract topics, without the deployment's prefix (see ``topic_name``)."""

    INGEST_RAW = "ingest.raw"
    RECORDS_INGESTED = "records.ingested"
    RECORDS_CLEAN = "records.clean"
    TRAIN_REQUESTS = "train.requests"
    MODELS_RELEASED = "models.released"
    PREDICTIONS = "predictions"
    PREDICTIONS_FUSED = "predictions.fused"
    REPORTS = "reports"
    DEADLETTER = "deadletter"
    AUDIT = "audit"


def topic_name(topic: Topic | str, prefix: str) -> str:
    return f"{prefix}{Topic(topic).value}"


def topic_from_name(name: str, prefix: str = "") -> Topic:
    """A contract topic from its name as a person types it: ``records.clean``, or with the deployment's prefix."""
    try:
        return Topic(name.removeprefix(prefix) if prefix else name)
    except ValueError:
        known = ", ".join(topic.value for topic in Topic)
        raise ValueError(
            f"no topic {name!r} in the contract; its topics are {known} (with or without the prefix {prefix!r})"
        ) from None


HOSPITAL_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
"""What a hospital id may be where it names a topic and a Kafka principal: Kafka's topic characters without the dot
(so a hospital's topic name parses back to exactly one hospital), short enough for the 249-character topic limit."""


def hospital_input_topic(hospital: str, prefix: str) -> str:
    """The one topic a hospital may publish to: ``<prefix>ingest.raw.<hospital>``, e.g. ``aimass.ingest.raw.cleveland``.

    Kafka records do not carry the principal that produced them, so ingest cannot check a ``ce_source`` against its
    sender; a topic per hospital, writable by that hospital's principal alone (docs/security.md), can be checked."""
    if not HOSPITAL_ID.fullmatch(hospital):
        raise ValueError(
            f"hospital id {hospital!r} cannot name a topic: use letters, digits, '-' and '_' (at most 200, no dots)"
        )
    return f"{topic_name(Topic.INGEST_RAW, prefix)}.{hospital}"


def hospital_of_input_topic(name: str, prefix: str) -> str | None:
    """The hospital whose input topic ``name`` is (see ``hospital_input_topic``); None for any other topic,
    the contract's shared ``ingest.raw`` included."""
    hospital = name.removeprefix(f"{topic_name(Topic.INGEST_RAW, prefix)}.")
    if hospital == name or not HOSPITAL_ID.fullmatch(hospital):
        return None
    return hospital


def group_id(service: str, prefix: str) -> str:
    """A service's consumer group in the deployment named by the topic prefix: ``aimass-infer`` for ``aimass.``,
    ``it-1a2b-infer`` for ``it-1a2b.``. Deployments sharing a broker then never join each other's groups (a test run
    beside the development stack would otherwise trigger rebalances in both)."""
    return f"{prefix.rstrip('.') or 'aimass'}-{service}"


# CloudEvents 1.0 Kafka protocol binding, binary content mode.
CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_SOURCE = "ce_source"
CE_TYPE = "ce_type"
CE_TIME = "ce_time"
CONTENT_TYPE = "content-type"

# Dead-letter headers added to the original ones.
DLQ_ERROR = "aimass-error"
DLQ_SERVICE = "aimass-service"
DLQ_ORIGINAL_TOPIC = "aimass-original-topic"
DLQ_ORIGINAL_PARTITION = "aimass-original-partition"
DLQ_ORIGINAL_OFFSET = "aimass-original-offset"
DLQ_HEADERS = (DLQ_ERROR, DLQ_SERVICE, DLQ_ORIGINAL_TOPIC, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_OFFSET)

JSON = "application/json"
_EVENT_NAMESPACE_BYTES = uuid.UUID("6f1c1d52-3f0e-4d8e-9a57-5b1a2f0c9e11").bytes


def event_type(entity: str, verb: str) -> str:
    """``org.aimass.<entity>.<verb>.v1`` as the contract names event types."""
    return f"org.aimass.{entity}.{verb}.v1"


def derived_event_id(service: str, parent_id: str, *parts: object) -> str:
    """A stable id for an event derived from ``parent_id``: the UUID 5 of ``service/parent_id/parts...``.

    Re-processing the same input after a crash yields the same id, so consumers de-duplicating on ``ce_id``
    absorb the repeat (at-least-once delivery made effectively-once downstream). Computed as ``uuid.uuid5`` does,
    without building ``uuid.UUID`` objects: infer derives one per prediction, and the objects cost 5 % of its time.
    """
    name = "/".join([service, parent_id, *map(str, parts)])
    digest = bytearray(hashlib.sha1(_EVENT_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloudevent_headers(
    *, service: str, type_: str, event_id: str, time: str | None = None, content_type: str = JSON
) -> dict[str, str]:
    return {
        CE_SPECVERSION: "1.0",
        CE_ID: event_id,
        CE_SOURCE: f"aimass/{service}",
        CE_TYPE: type_,
        CE_TIME: time or rfc3339_now(),
        CONTENT_TYPE: content_type,
    }


def decode_headers(raw: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Kafka headers as text. Invalid UTF-8 is replaced rather than raised: a hostile header must not crash us.

    A repeated header keeps its last value, as most Kafka clients do.
    """
    return {key: (value or b"").decode("utf-8", errors="replace") for key, value in raw}


def header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if value else None


def record_position(record: ConsumerRecord) -> str:
    """``topic/partition/offset``: stable across re-deliveries, the fallback id of a message without ``ce_id``."""
    return f"{record.topic}/{record.partition}/{record.offset}"


def event_id_of(record: ConsumerRecord) -> str:
    """The message's ``ce_id``, else its position in the log."""
    for name, value in record.headers:
        if name == CE_ID and value:
            return value.decode("utf-8", errors="replace")
    return record_position(record)
