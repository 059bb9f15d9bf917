"""The prediction cache in Redis: one MGET and one pipelined SET (with TTL) per batch, never one per record.

Redis is an accelerator here, not a dependency: when it fails, the batch is scored without the cache, the failure
is counted, and the cache is bypassed for ``retry_seconds`` so an outage costs one failed round trip, not one per
batch. The first successful round trip after that closes the bypass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("aimass.infer.cache")

RETRY_SECONDS = 2.0


class RedisPredictionCache:
    def __init__(self, redis: Redis, ttl_seconds: int, retry_seconds: float = RETRY_SECONDS) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.retry_seconds = retry_seconds
        self.failures = 0
        self._bypass_until = 0.0
        self._last_error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0

    @property
    def available(self) -> bool:
        return self.enabled and time.monotonic() >= self._bypass_until

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """The cached values in ``keys`` order; ``None`` when the cache is off or Redis failed (score them all)."""
        if not keys or not self.available:
            return None
        try:
            values = await self.redis.mget(keys)
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        self._bypass_until = 0.0
        return list(values)

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> bool:
        if not items or not self.available:
            return False
        pipe = self.redis.pipeline(transaction=False)
        for key, value in items:
            pipe.set(key, value, ex=self.ttl_seconds)
        try:
            await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed(error)
            return False
        return True

    def state(self) -> dict[str, object]:
        """For ``/readyz``: whether predictions use the cache right now, and why not."""
        if not self.enabled:
            return {"state": "off"}
        if self.available:
            return {"state": "on", "ttl_seconds": self.ttl_seconds, "failures": self.failures}
        return {"state": "bypassed", "reason": self._last_error, "failures": self.failures}

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        self._last_error = f"Redis {type(error).__name__}"
        self._bypass_until = time.monotonic() + self.retry_seconds
        log.warning("prediction cache unavailable; scoring without it", extra={"error": type(error).__name__})
