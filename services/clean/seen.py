"""What clean has already handled, in Redis, so a restart or a second replica does not re-emit.

Two sets, both with the configured TTL (``AIMASS_DEDUP_TTL_SECONDS``): event ids (``ce_id``) remembered after the
output was acknowledged, and content fingerprints claimed by the first event that carried them. A claim names its
event, so the redelivery of that same event (a crash between claim and publish) still goes through, while the same
content under any other id is a duplicate.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from shared.redis import redis_key


class SeenEvents(Protocol):
    async def seen(self, event_id: str) -> bool: ...
    async def remember(self, event_id: str) -> None: ...
    async def claim_content(self, fingerprint: str, event_id: str) -> bool:
        """True when ``event_id`` owns ``fingerprint`` (first to claim it, or claimed it before)."""
        ...


class RedisSeenEvents:
    def __init__(self, redis: Redis, namespace: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.namespace = namespace.rstrip(".") or "default"  # the topic prefix: one set per deployment's stream
        self.ttl_seconds = ttl_seconds

    def _key(self, event_id: str) -> str:
        return redis_key("clean", self.namespace, "seen", event_id)

    async def seen(self, event_id: str) -> bool:
        return bool(await self.redis.exists(self._key(event_id)))

    async def remember(self, event_id: str) -> None:
        await self.redis.set(self._key(event_id), b"1", ex=self.ttl_seconds)

    async def claim_content(self, fingerprint: str, event_id: str) -> bool:
        key = redis_key("clean", self.namespace, "content", fingerprint)
        if await self.redis.set(key, event_id.encode(), nx=True, ex=self.ttl_seconds):
            return True
        owner = await self.redis.get(key)
        return owner is None or owner.decode() == event_id
