"""The Redis client factory and the project's key naming (every key starts with ``aimass:``)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.security import redis_options
from shared.settings import Settings

KEY_PREFIX = "aimass:"


def make_redis(settings: Settings) -> Redis:
    # Short timeouts: a Redis outage must degrade a service quickly, not stall its consumer.
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        retry_on_timeout=False,
        **redis_options(settings),
    )


def redis_key(*parts: str) -> str:
    return KEY_PREFIX + ":".join(parts)
