"""What every service's domain code may ask of the outside world: publish an event, set a record aside.

The real ones are ``shared.events.EventPublisher`` and ``shared.events.DeadLetters``; unit tests pass the recording
fakes of ``tests/support/fakes.py``. Each service keeps its own ports (stores, caches, models) in ``ports.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Protocol

from aiokafka import ConsumerRecord
from pydantic import BaseModel

Pending = Awaitable[object] | None
"""A send handed to the producer and not yet acknowledged; ``None`` where the broker confirmed at once (FastStream's
in-memory test broker)."""


class Publisher(Protocol):
    async def enqueue(self, event: BaseModel, *, event_id: str, key: str | None) -> Pending:
        """Hand the event to the producer; the result is awaited (``shared.events.confirmed``) before a commit."""
        ...

    async def publish(self, event: BaseModel, *, event_id: str, key: str | None) -> None:
        """Send and wait for the broker's acknowledgement."""
        ...

    async def publish_many(self, events: Sequence[tuple[BaseModel, str, str | None]]) -> None:
        """``(event, event_id, key)`` in order, then wait for every acknowledgement."""
        ...


class RawDocuments(Protocol):
    async def enqueue(self, document: bytes, headers: Mapping[str, str], key: str) -> Pending:
        """Hand a hospital's document to the producer for ``ingest.raw``; await the result for the broker's ack."""
        ...


class DeadLetterSink(Protocol):
    async def enqueue(self, record: ConsumerRecord, reason: str, reason_class: str) -> Pending:
        """Set the record aside on ``deadletter`` with a reason a person can act on (never a value it carries)."""
        ...
