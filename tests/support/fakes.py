"""The recording fakes every unit test uses in place of the ports (``shared/ports.py``, ``services/*/ports.py``).

Each keeps what it was given, in order, so a test asserts on what the domain asked for. Sends go through one
``Acknowledgements``: the broker's side of them, which hands out a future per send, resolves it at once unless told to
hold, and fails the first ``failures`` of them, so a test sees what is enqueued before a batch's one wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord
from pydantic import BaseModel

from services.clean.dedup import Candidate, Verdict, first_of_each_event, verdicts
from services.fuse.join import Arrival
from services.fuse.ports import Added, Arriving, Claimed, JoinKey
from services.report.attribution import Scorer
from services.report.ports import ModelSource
from services.train.failures import NotTrainable
from shared.intake import Batch, EventCheck, Intake, Reader
from shared.metrics import ServiceMetrics
from shared.schemas.models import ModelCard, ModelRef


class Acknowledgements:
    """``sent`` keeps ``(kind, item)`` for every send, in order; ``acknowledged`` the kinds and items acknowledged."""

    def __init__(self, *, held: bool = False, failures: int = 0) -> None:
        self.held = held
        self.failures = failures
        self.sent: list[tuple[str, Any]] = []
        self.acknowledged: list[tuple[str, Any]] = []
        self.futures: list[asyncio.Future[None]] = []
        self.grown = asyncio.Event()

    def pending(self, kind: str, item: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        if self.failures:
            self.failures -= 1
            future.set_exception(ConnectionError("broker unavailable"))
            return future
        self.sent.append((kind, item))
        self.grown.set()
        future.add_done_callback(lambda done: done.cancelled() or self.acknowledged.append((kind, item)))
        if not self.held:
            future.set_result(None)
        return future

    def acknowledge_all(self) -> None:
        for future in self.futures:
            if not future.done():
                future.set_result(None)

    def of(self, kind: str) -> list[Any]:
        return [item for sent_kind, item in self.sent if sent_kind == kind]


class Sent(NamedTuple):
    event: BaseModel
    event_id: str
    key: str | None


class RecordingPublisher:
    """A ``shared.ports.Publisher``: ``sent`` holds every event the broker took, in order."""

    def __init__(self, acks: Acknowledgements | None = None, kind: str = "out", *, failures: int = 0) -> None:
        self.acks = acks or Acknowledgements(failures=failures)
        self.kind = kind

    @property
    def sent(self) -> list[Sent]:
        return self.acks.of(self.kind)

    @property
    def events(self) -> list[Any]:
        return [sent.event for sent in self.sent]

    async def enqueue(self, event: BaseModel, *, event_id: str, key: str | None) -> asyncio.Future[None]:
        return self.acks.pending(self.kind, Sent(event, event_id, key))

    async def publish(self, event: BaseModel, *, event_id: str, key: str | None) -> None:
        await self.enqueue(event, event_id=event_id, key=key)

    async def publish_many(self, events: Sequence[tuple[BaseModel, str, str | None]]) -> None:
        pending = [await self.enqueue(event, event_id=event_id, key=key) for event, event_id, key in events]
        await asyncio.gather(*pending)


class DeadLetter(NamedTuple):
    record: ConsumerRecord
    reason: str
    reason_class: str

    @property
    def offset(self) -> int:
        return self.record.offset


class RecordingRaw:
    """A ``shared.ports.RawDocuments`` (a door's ``ingest.raw``): ``documents`` holds (document, headers, key)."""

    def __init__(self, acks: Acknowledgements | None = None, kind: str = "raw") -> None:
        self.acks = acks or Acknowledgements()
        self.kind = kind

    @property
    def documents(self) -> list[tuple[bytes, dict[str, str], str]]:
        return self.acks.of(self.kind)

    async def enqueue(self, document: bytes, headers: Mapping[str, str], key: str) -> asyncio.Future[None]:
        return self.acks.pending(self.kind, (document, dict(headers), key))


class RecordingDeadLetters:
    """A ``shared.ports.DeadLetterSink``: ``letters`` holds every record set aside, with its reason."""

    def __init__(self, acks: Acknowledgements | None = None, kind: str = "dead") -> None:
        self.acks = acks or Acknowledgements()
        self.kind = kind

    @property
    def letters(self) -> list[DeadLetter]:
        return self.acks.of(self.kind)

    @property
    def reasons(self) -> list[str]:
        return [letter.reason for letter in self.letters]

    async def enqueue(self, record: ConsumerRecord, reason: str, reason_class: str) -> asyncio.Future[None]:
        return self.acks.pending(self.kind, DeadLetter(record, reason, reason_class))


@dataclass
class RecordingSender:
    """A service's own producer for pre-encoded events (infer's ``Sender``): what it sent, and in how many calls."""

    sent: list[Any] = field(default_factory=list)
    calls: int = 0

    async def send_all(self, events: Sequence[object]) -> None:
        self.calls += 1
        self.sent.extend(events)


def intake(deadletters: RecordingDeadLetters | None = None, metrics: ServiceMetrics | None = None) -> Intake:
    """The service's intake on fakes: its dead letters recorded, its counts on a fresh registry."""
    return Intake(deadletters or RecordingDeadLetters(), metrics or ServiceMetrics("unit"))


async def handled(
    handle: Callable[[Batch[Any]], Any],
    records: Sequence[ConsumerRecord],
    read: Reader[Any],
    *,
    deadletters: RecordingDeadLetters | None = None,
    metrics: ServiceMetrics | None = None,
    check: EventCheck[Any] | None = None,
) -> Batch[Any]:
    """``records`` through the subscriber path of ``Service.consume``: accepted, handled, confirmed."""
    return await intake(deadletters, metrics).handle(records, read, handle, check)


def consumed(
    topic: str,
    value: bytes | None,
    *,
    offset: int = 0,
    partition: int = 0,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> ConsumerRecord:
    """A record as aiokafka hands it to a subscriber."""
    return ConsumerRecord(
        topic, partition, offset, 0, 0, key, value, None, len(key or b""), len(value or b""), list(headers)
    )


class MemorySeenEvents:
    """clean's ``SeenEvents`` with the Redis scripts' semantics on two dicts: judged in batch order, content claims
    named by their event."""

    def __init__(self) -> None:
        self.events: set[str] = set()
        self.contents: dict[str, str] = {}
        self.calls = 0

    async def judge(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        self.calls += 1
        judged = {}
        for position in first_of_each_event(candidates):
            candidate = candidates[position]
            if candidate.event_id in self.events:
                judged[position] = Verdict.EVENT_ID
            elif self.contents.setdefault(candidate.fingerprint, candidate.event_id) == candidate.event_id:
                judged[position] = Verdict.NEW
            else:
                judged[position] = Verdict.CONTENT
        return verdicts(candidates, judged)

    async def remember(self, event_ids: Sequence[str]) -> None:
        self.events.update(event_ids)


class MemoryJoinStore:
    """fuse's ``JoinStore`` with the Redis store's rules (tests of the Redis store check those); ``calls`` counts the
    round trips the Redis store would make."""

    def __init__(self, lease_seconds: float = 20.0) -> None:
        self.joins: dict[JoinKey, dict[str, str]] = {}
        self.first_seen: dict[JoinKey, float] = {}
        self.deadlines: dict[JoinKey, float] = {}
        self.leases: dict[JoinKey, float] = {}
        self.marker: dict[JoinKey, str] = {}
        self.lease_seconds = lease_seconds
        self.calls = 0

    async def add_many(self, arriving: Sequence[Arriving], *, now: float) -> list[Added]:
        self.calls += 1
        return [self.add(a.key, a.site, a.payload, now=now, deadline=a.deadline) for a in arriving]

    async def claim_many(self, keys: Sequence[JoinKey], *, now: float) -> dict[JoinKey, Claimed]:
        self.calls += 1
        return {key: claimed for key in keys if (claimed := self.claim(key, now=now)) is not None}

    async def release_many(self, keys: Sequence[JoinKey], *, now: float) -> None:
        self.calls += 1
        for key in keys:
            if self.marker.get(key) == "claimed":
                del self.marker[key]
                self.leases.pop(key, None)
                self.deadlines[key] = now

    async def emitted_many(self, keys: Sequence[JoinKey]) -> None:
        self.calls += 1
        for key in keys:
            self.marker[key] = "emitted"
            self.leases.pop(key, None)

    def add(self, key: JoinKey, site: str, payload: str, *, now: float, deadline: float) -> Added:
        join = self.joins.setdefault(key, {}) if key not in self.marker else self.joins.get(key, {})
        if site in join:
            return Added(Arrival.DUPLICATE, frozenset(join))
        if key in self.marker:
            return Added(Arrival.LATE, frozenset())
        join[site] = payload
        self.first_seen.setdefault(key, now)
        self.deadlines.setdefault(key, deadline)
        return Added(Arrival.ADDED, frozenset(join))

    def claim(self, key: JoinKey, *, now: float) -> Claimed | None:
        state = self.marker.get(key)
        if state == "emitted" or key not in self.joins:
            return None
        if state == "claimed" and self.leases.get(key, 0) > now:
            return None
        self.marker[key] = "claimed"
        self.deadlines.pop(key, None)
        self.leases[key] = now + self.lease_seconds
        return Claimed(dict(self.joins[key]), self.first_seen[key])

    async def due(self, *, now: float, limit: int) -> list[JoinKey]:
        due = [k for k, t in self.deadlines.items() if t <= now] + [k for k, t in self.leases.items() if t <= now]
        return list(dict.fromkeys(due))[:limit]


class MemoryPredictionCache:
    """infer's ``Cache`` on a dict; ``down`` makes it answer like a Redis that is unreachable."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.values: dict[str, bytes] = {}
        self.down = False
        self.round_trips = 0

    @property
    def available(self) -> bool:
        return self.enabled and not self.down

    async def get_many(self, groups: Sequence[Sequence[str]]) -> list[list[bytes | None]] | None:
        if not self.enabled or self.down or not any(groups):
            return None
        self.round_trips += 1
        return [[self.values.get(k) for k in keys] for keys in groups]

    async def put_many(self, groups: Sequence[Sequence[tuple[str, bytes]]]) -> bool:
        if not self.enabled or self.down or not any(groups):
            return False
        self.round_trips += 1
        for items in groups:
            self.values.update(items)
        return True


class CountingModels:
    """report's ``ModelSource``: the real registry, counting the calls of each model (site, rows)."""

    def __init__(self, models: ModelSource) -> None:
        self.models = models
        self.calls: list[tuple[str, int]] = []

    def card(self, ref: ModelRef) -> ModelCard | None:
        return self.models.card(ref)

    def scorer(self, ref: ModelRef) -> Scorer | None:
        score = self.models.scorer(ref)
        if score is None:
            return None

        def counted(x):  # type: ignore[no-untyped-def]
            self.calls.append((ref.site, len(x)))
            return score(x)

        return counted


class RefusingWorker:
    """train's ``TrainingWorker`` with nothing it could train: every request ends as a ``not_trainable`` dead letter."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []

    async def train(self, task: str, site: str | None) -> list[ModelCard]:
        self.requests.append((task, site))
        raise NotTrainable(f"task {task}: nothing to train in this test")


class RecordingAudit:
    """An ``Audit`` (``services.report.routes``): ``events`` holds every access event, in order; with ``failing``
    set the broker does not take them (the route must answer 503, not the data)."""

    def __init__(self, failing: bool = False) -> None:
        self.events: list[Any] = []
        self.failing = failing

    async def __call__(self, event: Any) -> None:
        if self.failing:
            raise ConnectionError("broker unavailable")
        self.events.append(event)
