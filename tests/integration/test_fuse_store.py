"""The Redis join store on the real Redis: atomic adds and claims, two replicas, leases, late arrivals."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from services.fuse.adapters.redis_joins import RedisJoinStore
from services.fuse.join import Arrival
from services.fuse.store import JoinKey
from shared.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def stores(redis: Redis, settings: Settings):
    namespace = f"it-fuse-store-{uuid.uuid4().hex[:8]}"
    # Two replicas: two clients on one Redis, as two processes would have.
    other = Redis.from_url(settings.redis_url.get_secret_value())
    yield RedisJoinStore(redis, namespace, ttl_seconds=600, lease_seconds=5), \
        RedisJoinStore(other, namespace, ttl_seconds=600, lease_seconds=5)
    keys = [k async for k in redis.scan_iter(f"aimass:fuse:{namespace}:*")]
    if keys:
        await redis.delete(*keys)
    await other.aclose()


async def test_adds_from_two_replicas_make_one_join_and_duplicates_are_recognised(stores) -> None:
    one, two = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    first = await one.add(key, "hungary", '{"p": 1}', now=100.0, deadline=102.0)
    second = await two.add(key, "switzerland", '{"p": 2}', now=100.5, deadline=102.5)
    again = await two.add(key, "hungary", '{"p": 3}', now=101.0, deadline=103.0)
    assert first.arrival is Arrival.ADDED and first.sites == {"hungary"}
    assert second.arrival is Arrival.ADDED and second.sites == {"hungary", "switzerland"}
    assert again.arrival is Arrival.DUPLICATE
    assert await one.due(now=101.9, limit=10) == []
    assert await two.due(now=102.0, limit=10) == [key]  # the first prediction's deadline holds
    claimed = await one.claim(key, now=102.0)
    assert claimed is not None
    assert claimed.payloads == {"hungary": '{"p": 1}', "switzerland": '{"p": 2}'} and claimed.first_seen == 100.0


async def test_exactly_one_of_many_concurrent_claims_wins(stores) -> None:
    one, two = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    await one.add(key, "hungary", "{}", now=100.0, deadline=102.0)
    results = await asyncio.gather(*[(one if i % 2 else two).claim(key, now=103.0) for i in range(40)])
    assert sum(r is not None for r in results) == 1


async def test_a_lost_emission_becomes_due_after_its_lease_and_an_emitted_join_never_again(stores) -> None:
    one, two = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    await one.add(key, "hungary", "{}", now=100.0, deadline=102.0)
    assert await one.claim(key, now=102.0) is not None  # ... and this replica dies before publishing
    assert await two.claim(key, now=104.0) is None  # the lease (5 s) still holds
    assert await two.due(now=104.0, limit=10) == []
    assert await two.due(now=107.0, limit=10) == [key]
    assert await two.claim(key, now=107.0) is not None
    await two.emitted(key)
    assert await one.due(now=1e9, limit=10) == []
    assert await one.claim(key, now=1e9) is None
    late = await one.add(key, "va-long-beach", "{}", now=108.0, deadline=110.0)
    assert late.arrival is Arrival.LATE
    assert (await one.add(key, "hungary", "{}", now=108.0, deadline=110.0)).arrival is Arrival.DUPLICATE
    assert await one.due(now=1e9, limit=10) == []


async def test_keys_carry_the_aimass_prefix_and_expire(stores, redis: Redis) -> None:
    one, _ = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    await one.add(key, "hungary", "{}", now=100.0, deadline=102.0)
    await one.claim(key, now=102.0)
    await one.emitted(key)
    names = [k.decode() async for k in redis.scan_iter(f"aimass:fuse:{one.namespace}:*{key.record_id}")]
    assert len(names) == 2
    for name in names:
        assert 0 < await redis.ttl(name) <= 600
