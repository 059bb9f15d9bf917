"""In-memory ports for infer's handlers."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord


class MemoryCache:
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


class MemorySender:
    def __init__(self) -> None:
        self.sent: list = []
        self.calls = 0

    async def send_all(self, events: Sequence[object]) -> None:
        self.calls += 1
        self.sent.extend(events)


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[ConsumerRecord, str]] = []

    async def enqueue(self, record: ConsumerRecord, reason: str, reason_class: str) -> None:
        self.sent.append((record, reason))
