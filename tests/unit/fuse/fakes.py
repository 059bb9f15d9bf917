"""In-memory stand-ins for fuse's ports, with the Redis store's rules (tests of the Redis store check those)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from pydantic import BaseModel

from services.fuse.join import Arrival
from services.fuse.store import Added, Arriving, Claimed, JoinKey


class MemoryJoinStore:
    def __init__(self, lease_seconds: float = 20.0) -> None:
        self.joins: dict[JoinKey, dict[str, str]] = {}
        self.first_seen: dict[JoinKey, float] = {}
        self.deadlines: dict[JoinKey, float] = {}
        self.leases: dict[JoinKey, float] = {}
        self.marker: dict[JoinKey, str] = {}
        self.lease_seconds = lease_seconds
        self.calls = 0  # round trips, as the Redis store would make them

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


class RecordingPublisher:
    def __init__(self, fail: int = 0) -> None:
        self.published: list[tuple[BaseModel, str, str | None]] = []
        self.fail = fail

    async def publish(self, event: BaseModel, *, event_id: str, key: str | None) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.published.append((event, event_id, key))

    async def publish_many(self, events: Sequence[tuple[BaseModel, str, str | None]]) -> None:
        if events and self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.published.extend(events)


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[int, str]] = []
        self.acknowledged = 0

    async def enqueue(self, record: object, reason: str, reason_class: str) -> Awaitable[None]:
        self.letters.append((record.offset, reason_class))  # type: ignore[attr-defined]

        async def acknowledged() -> None:
            self.acknowledged += 1

        return acknowledged()
