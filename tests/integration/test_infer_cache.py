"""The prediction cache adapter on the real Redis: one read and one write per batch, every key with its TTL."""

from __future__ import annotations

import uuid

import pytest

from services.infer.adapters.redis_cache import RedisPredictionCache

pytestmark = pytest.mark.integration


async def test_a_batch_written_is_read_back_with_a_ttl_on_every_key(redis) -> None:
    cache = RedisPredictionCache(redis, ttl_seconds=120)
    run = uuid.uuid4().hex
    groups = [[f"aimass:infer:test:{{{run}:{model}}}:{n}" for n in range(500)] for model in ("a", "b")]
    assert await cache.get_many(groups) == [[None] * 500, [None] * 500]
    written = [[(key, f"0.{n}".encode()) for n, key in enumerate(keys)] for keys in groups]
    written[1] = written[1][:10]  # a model with fewer misses
    assert await cache.put_many(written)
    answers = await cache.get_many(groups)
    assert answers[0] == [f"0.{n}".encode() for n in range(500)]
    assert answers[1][:10] == [f"0.{n}".encode() for n in range(10)] and answers[1][10:] == [None] * 490
    assert 0 < await redis.ttl(groups[0][0]) <= 120 and 0 < await redis.ttl(groups[1][9]) <= 120
    assert cache.state()["state"] == "on" and cache.failures == 0
    await redis.delete(*groups[0], *groups[1][:10])
