"""The Kafka broker factory and the delivery rules every service shares.

At least once, end to end: auto-commit is off (``NACK_ON_ERROR``); the offset is committed only after the
handler returned, and the handler returns only after its outputs were acknowledged by the broker (``acks=all``,
idempotent producer). Bad input never raises: it is dead-lettered by the handler. A raise means the platform
itself failed (broker, Redis); the record is then re-delivered after a short back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import types
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy

from shared.metrics import ServiceMetrics
from shared.security import kafka_client_options, kafka_security
from shared.settings import Settings
from shared.topics import Topic, hospital_input_topic, topic_name

log = logging.getLogger("aimass.broker")

RETRY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class BackoffOnFailure(BaseMiddleware):
    """Sleeps before a failed record is re-delivered, so an outage does not become a hot loop.

    The delay grows with consecutive failures of the same subscriber and resets on the first success.
    """

    failures = 0

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        try:
            result = await call_next(msg)
        except Exception:
            delay = RETRY_BACKOFF_SECONDS[min(BackoffOnFailure.failures, len(RETRY_BACKOFF_SECONDS) - 1)]
            BackoffOnFailure.failures += 1
            log.exception("handler failed; the record will be re-delivered in %.1f s", delay)
            await asyncio.sleep(delay)
            raise
        BackoffOnFailure.failures = 0
        return result


async def tolerant_parser(
    record: ConsumerRecord, original: Callable[[ConsumerRecord], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """FastStream's parser, minus its crash on header values that are null or not UTF-8.

    The handler still sees the original record (``msg.raw_message``) with its header bytes untouched.
    """
    safe_headers = [(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers]
    message = await original(dataclasses.replace(record, headers=safe_headers))
    message.raw_message = record
    return message


async def tolerant_batch_parser(
    records: tuple[ConsumerRecord, ...],
    original: Callable[[tuple[ConsumerRecord, ...]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    """``tolerant_parser`` for batch subscribers: ``msg.raw_message`` is the original tuple of records."""
    safe = tuple(
        dataclasses.replace(r, headers=[(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in r.headers])
        for r in records
    )
    message = await original(safe)
    message.raw_message = records
    return message


async def raw_body(message: StreamMessage[Any]) -> bytes:
    """No decoding by content-type: handlers read the raw record and decide what is valid themselves, so a
    malformed body becomes a dead letter instead of an exception before the handler runs."""
    return message.body


MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""The largest message the contract topics take (the broker's ``message.max.bytes``)."""
DEADLETTER_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
"""``deadletter`` takes a little more: a dead letter is a message of up to ``MAX_MESSAGE_BYTES`` plus its reason
headers, and one that did not fit would fail its batch again and again instead of being set aside. Producers may send
this much (the client cannot tell topics apart); every other topic's broker limit still applies."""


def make_broker(settings: Settings, service: str, metrics: ServiceMetrics) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=kafka_security(settings),
        client_id=f"aimass-{service}",
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        max_request_size=DEADLETTER_MAX_MESSAGE_BYTES,
        request_timeout_ms=15_000,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=15.0,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name=service), BackoffOnFailure],
        logger=logging.getLogger(f"aimass.{service}.faststream"),
        log_level=logging.DEBUG,  # "Received"/"Processed" per message: too much for INFO at thousands per second
        description=f"AI Mass {service} service",
    )


async def _next_batch(subscriber: BatchSubscriber, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
    """The records available now, or the first to arrive within ``batch_timeout_ms``; () if none came."""
    batches = await consumer.getmany(timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records)
    return tuple(chain.from_iterable(batches.values()))


def without_idle_pause(subscriber: BatchSubscriber) -> BatchSubscriber:
    """FastStream's batch subscriber sleeps another ``batch_timeout_ms`` after a poll that found nothing, and a record
    arriving meanwhile waits it out: at a few records per second that added 5–20 ms to every hop of the pipeline
    (docs/benchmarks.md). Without the pause an empty poll is followed by the next, which returns as soon as a record
    arrives; idle, that is one ``getmany`` per ``batch_timeout_ms``."""
    subscriber.get_msg = types.MethodType(_next_batch, subscriber)  # type: ignore[method-assign]
    return subscriber


def consumer_options(group: str, batch: bool = False) -> dict[str, Any]:
    """Subscriber settings shared by every service: its own group, start at the earliest uncommitted record."""
    return {
        "group_id": group,
        "auto_offset_reset": "earliest",
        "parser": tolerant_batch_parser if batch else tolerant_parser,
        "decoder": raw_body,
        "max_poll_interval_ms": 300_000,
    }


async def ensure_topics(
    settings: Settings, topics: list[Topic] | None = None, *, hospitals: Sequence[str] = ()
) -> None:
    """Create the contract topics with the configured partition count (``deadletter`` with room for the reason
    headers of the largest message), and each of ``hospitals``' input topic (``hospital_input_topic``); existing ones
    are left as they are.

    Best effort, as before: the broker's per-topic refusals are not raised. On the secured stack a service may not
    create topics (the admin made them at start, deploy/lib/secure.py), and its start goes on past the refusal."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings), request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [topic_name(t, settings.topic_prefix) for t in (topics or list(Topic))]
        wanted += [hospital_input_topic(h, settings.topic_prefix) for h in hospitals]
        deadletter = topic_name(Topic.DEADLETTER, settings.topic_prefix)
        room = {"max.message.bytes": str(DEADLETTER_MAX_MESSAGE_BYTES)}
        missing = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=1,
                topic_configs=room if name == deadletter else {},
            )
            for name in wanted
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another service created them first
                await admin.create_topics(missing)
    finally:
        await admin.close()
