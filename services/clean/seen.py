"""The set of event ids already handled, in Redis, so a restart or a second replica does not re-emit."""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from shared.redis import redis_key


class SeenEvents(Protocol):
    async def seen(self, event_id: str) -> bool: ...
    async def remember(self, event_id: str) -> None: ...


class RedisSeenEvents:
    def __init__(self, redis: Redis, scope: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.scope = scope
        self.ttl_seconds = ttl_seconds

    def _key(self, event_id: str) -> str:
        return redis_key(self.scope, "seen", event_id)

    async def seen(self, event_id: str) -> bool:
        return bool(await self.redis.exists(self._key(event_id)))

    async def remember(self, event_id: str) -> None:
        await self.redis.set(self._key(event_id), b"1", ex=self.ttl_seconds)
