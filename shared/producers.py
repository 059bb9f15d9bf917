"""Producers that come back by themselves after a fatal error.

aiokafka's idempotent producer cannot recover from ``OutOfOrderSequenceNumber``: once the broker rejects one batch's
sequence, every later batch to that partition fails the same way until the process restarts (aiokafka issue #1017;
the Java client bumps the producer epoch instead). It happens after a broker restart that caught a batch in flight
(docs/reliability.md). A producer can also end up with its sender task dead, after which no send completes.

Every producer of a service is a ``CheckedProducer``, which remembers such an error when a send fails with it, and
``ProducerWatch`` checks them once a second: a broken one is replaced by a new one (a new producer id, so the broker
accepts its sequence again); until then the service's Kafka readiness check says ``down``. Nothing is lost
meanwhile: a failed send raises, the handler's records stay uncommitted and come back.

aiokafka keeps the sender task private (``_sender``); the one place that reads it is ``sender_failure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter

from shared.background import BackgroundTask

log = logging.getLogger("aimass.producers")

CHECK_SECONDS = 1.0
STOP_SECONDS = 5.0

# After one of these the producer's id, epoch or sequence no longer matches the broker's: no later send succeeds.
SEQUENCE_ERRORS = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)


class CheckedProducer(AIOKafkaProducer):
    """An aiokafka producer that remembers the first send that failed with one of ``SEQUENCE_ERRORS``."""

    broken: BaseException | None = None

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future = await super().send(*args, **kwargs)
        future.add_done_callback(self._check)
        return future

    async def send_batch(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future = await super().send_batch(*args, **kwargs)
        future.add_done_callback(self._check)
        return future

    def _check(self, future: asyncio.Future[Any]) -> None:
        if self.broken is None and not future.cancelled() and isinstance(future.exception(), SEQUENCE_ERRORS):
            self.broken = future.exception()


def producer_failure(producer: AIOKafkaProducer | None) -> BaseException | None:
    """Why ``producer`` can no longer send, or None while it can."""
    return getattr(producer, "broken", None) or sender_failure(producer)


def sender_failure(producer: AIOKafkaProducer | None) -> BaseException | None:
    """The error that ended the producer's sender task, or None while it runs (or was stopped on purpose)."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


async def close_quietly(producer: AIOKafkaProducer) -> None:
    """Stop a dead producer: its pending sends already failed, so nothing is waited for but its connections."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), STOP_SECONDS)


def broker_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The aiokafka producer inside a connected FastStream broker (None before ``connect``)."""
    state = getattr(broker.config.producer, "_producer", None)
    return state.producer if state else None  # FastStream's empty state is falsy and raises on .producer


async def renew_broker_producer(broker: KafkaBroker) -> None:
    """Give a connected FastStream broker a new ``CheckedProducer`` with the settings it was connected with (at
    start too: FastStream itself makes a plain one)."""
    fast = broker.config.producer
    old = broker_producer(broker)
    if old is None:  # not connected, or FastStream's in-memory test broker: nothing to replace
        return
    replacement = CheckedProducer(**broker._connection_kwargs)
    await fast.connect(replacement, serializer=fast.serializer, codec=fast.codec)  # starts it, then swaps it in
    await close_quietly(old)


@dataclass
class WatchedProducer:
    name: str
    current: Callable[[], AIOKafkaProducer | None]
    renew: Callable[[], Awaitable[None]]


class ProducerWatch:
    """Replaces any producer of the service that can no longer send (see the module docstring)."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self._watched: list[WatchedProducer] = []
        self._loop = BackgroundTask(f"{service}-producer-watch", self._run)
        self._lock = asyncio.Lock()
        self.renewals = Counter(
            "aimass_producer_renewals_total",
            "Kafka producers replaced because they could no longer send (e.g. OutOfOrderSequenceNumber)",
            ["service", "producer", "error"],
            registry=registry,
        )

    def watch(
        self, name: str, current: Callable[[], AIOKafkaProducer | None], renew: Callable[[], Awaitable[None]]
    ) -> None:
        self._watched.append(WatchedProducer(name, current, renew))

    def failed(self) -> list[str]:
        """Names of the producers that can no longer send and are not replaced yet."""
        return [w.name for w in self._watched if producer_failure(w.current()) is not None]

    async def check(self) -> list[str]:
        """Replace every failed producer now; the names of those replaced."""
        renewed = []
        async with self._lock:
            for watched in self._watched:
                error = producer_failure(watched.current())
                if error is None:
                    continue
                log.warning(
                    "the %s producer failed (%s) and is replaced by a new one; the records it could not send "
                    "are re-delivered",
                    watched.name,
                    type(error).__name__,
                    extra={"event": "producer_renewed", "producer": watched.name, "error": type(error).__name__},
                )
                await watched.renew()
                self.renewals.labels(self.service, watched.name, type(error).__name__).inc()
                renewed.append(watched.name)
        return renewed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                await self.check()
            except Exception:  # the broker may be down right now: try again next round
                log.exception("could not replace a failed producer; trying again in %.0f s", CHECK_SECONDS)

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
