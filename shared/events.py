"""Publishing the project's events (CloudEvents headers) and dead letters (original bytes plus a reason)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Iterable, Sequence

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from shared.metrics import ServiceMetrics
from shared.settings import Settings
from shared.topics import (
    DLQ_ERROR,
    DLQ_HEADERS,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_SERVICE,
    Topic,
    cloudevent_headers,
    decode_headers,
    event_type,
    topic_name,
)

log = logging.getLogger("aimass.events")

MAX_REASON_CHARS = 1000


class EventPublisher:
    """Publishes one kind of event (``org.aimass.<entity>.<verb>.v1``) to one contract topic."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: Settings,
        service: str,
        topic: Topic,
        *,
        entity: str,
        verb: str,
        schema: type[BaseModel],
        description: str = "",
    ) -> None:
        self.service = service
        self.type = event_type(entity, verb)
        self.topic = topic_name(topic, settings.topic_prefix)
        self._publisher = broker.publisher(
            self.topic,
            schema=schema,
            description=description or f"{self.type} from {service}",
            title=f"{self.topic}:{self.type}",  # two kinds of event on one topic (audit) are two channels to FastStream
        )

    async def publish(self, event: BaseModel, *, event_id: str, key: str | None) -> None:
        """Publish and wait until the broker acknowledged it (``acks=all``)."""
        await confirmed([await self.enqueue(event, event_id=event_id, key=key)])

    async def publish_many(self, events: Sequence[tuple[BaseModel, str, str | None]]) -> None:
        """Publish ``(event, event_id, key)`` triples in order, then wait for every acknowledgement."""
        await confirmed([await self.enqueue(event, event_id=event_id, key=key) for event, event_id, key in events])

    async def enqueue(self, event: BaseModel, *, event_id: str, key: str | None) -> Awaitable[object] | None:
        """Hand the event to the producer without waiting; await the result (see ``confirmed``) before committing."""
        return await self._publisher.publish(
            event.model_dump_json(exclude_none=True).encode(),
            key=key.encode() if key else None,
            headers=cloudevent_headers(service=self.service, type_=self.type, event_id=event_id),
            no_confirm=True,
        )


async def confirmed(pending: Iterable[Awaitable[object] | None]) -> None:
    """Wait for the broker's acknowledgement of each enqueued send; the first failure raises."""
    # The in-memory TestKafkaBroker confirms synchronously and returns no future.
    await asyncio.gather(*(p for p in pending if inspect.isawaitable(p)))


def one_line(reason: str) -> str:
    text = " ".join(reason.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


class DeadLetters:
    """Sends what a service cannot process to ``deadletter``: the original bytes, headers and key, plus why."""

    def __init__(self, broker: KafkaBroker, settings: Settings, service: str, metrics: ServiceMetrics) -> None:
        self.service = service
        self.metrics = metrics
        self.topic = topic_name(Topic.DEADLETTER, settings.topic_prefix)
        self._publisher = broker.publisher(
            self.topic,
            description="Messages a service could not process: original value and headers plus aimass-error, "
            "aimass-service and the original topic, partition and offset. Holds raw input: restricted.",
        )

    async def send(self, record: ConsumerRecord, reason: str, reason_class: str) -> None:
        await confirmed([await self.enqueue(record, reason, reason_class)])

    async def enqueue(self, record: ConsumerRecord, reason: str, reason_class: str) -> Awaitable[object] | None:
        # A replayed dead letter that fails again gets fresh reason headers, not two sets.
        headers = {k: v for k, v in decode_headers(record.headers).items() if k not in DLQ_HEADERS}
        headers.update(
            {
                DLQ_ERROR: one_line(reason),
                DLQ_SERVICE: self.service,
                DLQ_ORIGINAL_TOPIC: record.topic,
                DLQ_ORIGINAL_PARTITION: str(record.partition),
                DLQ_ORIGINAL_OFFSET: str(record.offset),
            }
        )
        pending = await self._publisher.publish(record.value or b"", key=record.key, headers=headers, no_confirm=True)
        self.metrics.deadletters.labels(self.service, reason_class).inc()
        self.metrics.counted("deadlettered")
        log.warning(
            "dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason_class,
            },
        )
        return pending
