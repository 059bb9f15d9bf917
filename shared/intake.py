"""The one intake every subscriber goes through: consumed records in, typed events out, dead letters set aside.

A subscriber reads: take the batch (``Intake.accept_batch``), call the domain with its typed events, confirm. The
domain adds what it sends to the batch (``Batch.send``) and rejects what it cannot use (``Batch.reject``);
``Batch.confirm`` waits for every acknowledgement at once, and only then counts the batch's outcomes, so a batch that
fails and comes again is neither committed early nor counted twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import ConsumerRecord
from pydantic import BaseModel

from shared.errors import RejectedInput, parse_event
from shared.events import confirmed
from shared.metrics import ServiceMetrics
from shared.ports import DeadLetterSink, Pending, Publisher
from shared.topics import decode_headers, event_id_of

T = TypeVar("T")
Reader = type[BaseModel] | Callable[[ConsumerRecord], T]
"""A record's value as a schema, or a function of the record that raises ``RejectedInput`` on what it cannot read."""
EventCheck = Callable[[T], object]
"""Raises ``RejectedInput`` for an event its schema lets through that the service still cannot use."""


@dataclass(frozen=True, slots=True)
class Accepted(Generic[T]):
    """One record of the batch that could be read, and what was read from it."""

    record: ConsumerRecord
    event: T

    @property
    def event_id(self) -> str:
        """The record's ``ce_id``, else its position in the log (``shared.topics.event_id_of``)."""
        return event_id_of(self.record)

    @property
    def headers(self) -> dict[str, str]:
        return decode_headers(self.record.headers)


class Batch(Generic[T]):
    """The accepted events of one consumed batch, with everything sent for it that is not yet acknowledged."""

    def __init__(self, deadletters: DeadLetterSink, metrics: ServiceMetrics) -> None:
        self.items: list[Accepted[T]] = []
        self._deadletters = deadletters
        self._metrics = metrics
        self._pending: list[Pending] = []
        self._counts: Counter[str] = Counter()

    @property
    def events(self) -> list[T]:
        return [item.event for item in self.items]

    def __iter__(self) -> Iterator[Accepted[T]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    async def send(self, publisher: Publisher, event: BaseModel, *, event_id: str, key: str | None) -> None:
        """Enqueue an output; ``confirm`` waits for its acknowledgement."""
        self._pending.append(await publisher.enqueue(event, event_id=event_id, key=key))

    def awaiting(self, pending: Pending) -> None:
        """A send made by other means (a service's own producer) that ``confirm`` must also wait for."""
        self._pending.append(pending)

    async def reject(self, record: ConsumerRecord, rejected: RejectedInput) -> None:
        """Dead-letter ``record`` (one of the batch, or a part of one standing for itself) with the reason."""
        self._pending.append(await self._deadletters.enqueue(record, rejected.reason, rejected.reason_class))

    def count(self, outcome: str, amount: int = 1) -> None:
        """Count an outcome (``aimass_events_total``) once the batch is confirmed."""
        if amount:
            self._counts[outcome] += amount

    async def confirm(self) -> None:
        """Wait for every send and dead letter of the batch; the first failure raises (the batch comes again).
        Then the batch's counts are added. Calling it again waits only for what was sent since."""
        pending, self._pending = self._pending, []
        await confirmed(pending)
        counts, self._counts = self._counts, Counter()
        for outcome, amount in counts.items():
            self._metrics.counted(outcome, amount)


class Intake:
    """Reads consumed records into a ``Batch``: what cannot be read is dead-lettered with the reason."""

    def __init__(self, deadletters: DeadLetterSink, metrics: ServiceMetrics) -> None:
        self.deadletters = deadletters
        self.metrics = metrics

    async def accept_batch(
        self, records: Sequence[ConsumerRecord], read: Reader[T], check: EventCheck[T] | None = None
    ) -> Batch[T]:
        batch: Batch[T] = Batch(self.deadletters, self.metrics)
        parse = _parser(read)
        for record in records:
            try:
                event = parse(record)
                if check is not None:
                    check(event)
            except RejectedInput as rejected:
                await batch.reject(record, rejected)
                continue
            batch.items.append(Accepted(record, event))
        batch.count("received", len(batch.items))
        return batch

    async def handle(
        self,
        records: Sequence[ConsumerRecord],
        read: Reader[T],
        handle: Callable[[Batch[T]], Awaitable[object]],
        check: EventCheck[T] | None = None,
    ) -> Batch[T]:
        """What a subscriber does with a consumed batch: accept it, hand it to the domain, confirm it."""
        batch = await self.accept_batch(records, read, check)
        await handle(batch)
        await batch.confirm()
        return batch


def _parser(read: Reader[T]) -> Callable[[ConsumerRecord], T]:
    if isinstance(read, type) and issubclass(read, BaseModel):
        schema = read
        return lambda record: parse_event(record.value, schema, record.topic)  # type: ignore[return-value]
    return read  # type: ignore[return-value]
