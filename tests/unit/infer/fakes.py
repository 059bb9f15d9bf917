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

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        if not self.enabled or self.down or not keys:
            return None
        self.round_trips += 1
        return [self.values.get(k) for k in keys]

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> bool:
        if not self.enabled or self.down or not items:
            return False
        self.round_trips += 1
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
