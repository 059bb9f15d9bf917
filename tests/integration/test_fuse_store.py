"""The Redis join store on the real Redis: atomic adds and claims, two replicas, leases, late arrivals, batches."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from services.fuse.adapters.redis_joins import RedisJoinStore
from services.fuse.join import Arrival
from services.fuse.ports import Added, Arriving, Claimed, JoinKey
from shared.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def stores(redis: Redis, settings: Settings):
    namespace = f"it-fuse-store-{uuid.uuid4().hex[:8]}"
    # Two replicas: two clients on one Redis, as two processes would have.
    other = Redis.from_url(settings.redis_url.get_secret_value())
    yield (
        RedisJoinStore(redis, namespace, ttl_seconds=600, lease_seconds=5),
        RedisJoinStore(other, namespace, ttl_seconds=600, lease_seconds=5),
    )
    keys = [k async for k in redis.scan_iter(f"aimass:fuse:{namespace}:*")]
    if keys:
        await redis.delete(*keys)
    await other.aclose()


async def add(store: RedisJoinStore, key: JoinKey, site: str, payload: str, *, now: float, deadline: float) -> Added:
    [added] = await store.add_many([Arriving(key, site, payload, deadline)], now=now)
    return added


async def claim(store: RedisJoinStore, key: JoinKey, *, now: float) -> Claimed | None:
    return (await store.claim_many([key], now=now)).get(key)


async def test_adds_from_two_replicas_make_one_join_and_duplicates_are_recognised(stores) -> None:
    one, two = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    first = await add(one, key, "hungary", '{"p": 1}', now=100.0, deadline=102.0)
    second = await add(two, key, "switzerland", '{"p": 2}', now=100.5, deadline=102.5)
    again = await add(two, key, "hungary", '{"p": 3}', now=101.0, deadline=103.0)
    assert first.arrival is Arrival.ADDED and first.sites == {"hungary"}
    assert second.arrival is Arrival.ADDED and second.sites == {"hungary", "switzerland"}
    assert again.arrival is Arrival.DUPLICATE
    assert await one.due(now=101.9, limit=10) == []
    assert await two.due(now=102.0, limit=10) == [key]  # the first prediction's deadline holds
    claimed = await claim(one, key, now=102.0)
    assert claimed is not None
    assert claimed.payloads == {"hungary": '{"p": 1}', "switzerland": '{"p": 2}'} and claimed.first_seen == 100.0


async def test_exactly_one_of_many_concurrent_claims_wins(stores) -> None:
    one, two = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    await add(one, key, "hungary", "{}", now=100.0, deadline=102.0)
    results = await asyncio.gather(*[claim(one if i % 2 else two, key, now=103.0) for i in range(40)])
    assert sum(r is not None for r in results) == 1


async def test_a_lost_emission_becomes_due_after_its_lease_and_an_emitted_join_never_again(stores) -> None:
    one, two = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    await add(one, key, "hungary", "{}", now=100.0, deadline=102.0)
    assert await claim(one, key, now=102.0) is not None  # ... and this replica dies before publishing
    assert await claim(two, key, now=104.0) is None  # the lease (5 s) still holds
    assert await two.due(now=104.0, limit=10) == []
    assert await two.due(now=107.0, limit=10) == [key]
    assert await claim(two, key, now=107.0) is not None
    await two.emitted_many([key])
    assert await one.due(now=1e9, limit=10) == []
    assert await claim(one, key, now=1e9) is None
    late = await add(one, key, "va-long-beach", "{}", now=108.0, deadline=110.0)
    assert late.arrival is Arrival.LATE
    assert (await add(one, key, "hungary", "{}", now=108.0, deadline=110.0)).arrival is Arrival.DUPLICATE
    assert await one.due(now=1e9, limit=10) == []


async def test_an_emitted_join_keeps_who_answered_but_not_the_predictions(stores, redis: Redis) -> None:
    one, _ = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    prediction = '{"probability": 0.7, "features": [' + ", ".join(["54.0"] * 13) + "]}"
    for site in ("hungary", "cleveland"):
        await add(one, key, site, prediction, now=100.0, deadline=102.0)
    assert await claim(one, key, now=102.0) is not None
    await one.emitted_many([key])
    join = f"aimass:fuse:{one.namespace}:join:{key.task}:{key.record_id}"
    assert await redis.hgetall(join) == {b"model:hungary": b"", b"model:cleveland": b"", b"first_seen": b"100.0"}
    assert 0 < await redis.ttl(join) <= 600
    assert (await add(one, key, "cleveland", prediction, now=103.0, deadline=105.0)).arrival is Arrival.DUPLICATE
    assert (await add(one, key, "switzerland", prediction, now=103.0, deadline=105.0)).arrival is Arrival.LATE


async def test_keys_carry_the_aimass_prefix_and_expire(stores, redis: Redis) -> None:
    one, _ = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    await add(one, key, "hungary", "{}", now=100.0, deadline=102.0)
    await claim(one, key, now=102.0)
    await one.emitted_many([key])
    names = [k.decode() async for k in redis.scan_iter(f"aimass:fuse:{one.namespace}:*{key.record_id}")]
    assert len(names) == 2
    for name in names:
        assert 0 < await redis.ttl(name) <= 600


async def test_one_batch_call_adds_many_joins_and_concurrent_batch_claims_share_them_out(stores) -> None:
    one, two = stores
    keys = [JoinKey("heart_disease", str(uuid.uuid4())) for _ in range(200)]
    batch = [Arriving(k, site, f'{{"{site}": 1}}', 102.0) for k in keys for site in ("hungary", "switzerland")]
    batch.insert(1, Arriving(keys[0], "hungary", '{"again": 1}', 102.0))  # a repeat within the batch
    added = await one.add_many(batch, now=100.0)
    assert [a.arrival for a in added].count(Arrival.DUPLICATE) == 1 and added[1].arrival is Arrival.DUPLICATE
    assert added[-1].sites == {"hungary", "switzerland"}
    # Two replicas claim overlapping halves at once: every join goes to exactly one of them.
    first, second = await asyncio.gather(one.claim_many(keys[:150], now=103.0), two.claim_many(keys[50:], now=103.0))
    assert not set(first) & set(second) and set(first) | set(second) == set(keys)
    assert first.get(keys[0], second.get(keys[0])).payloads["hungary"] == '{"hungary": 1}'
    await one.emitted_many(list(first))
    await two.emitted_many(list(second))
    assert await one.due(now=1e9, limit=500) == []
    again = await two.add_many([batch[2], Arriving(keys[3], "va-long-beach", "{}", 106.0)], now=104.0)
    assert [a.arrival for a in again] == [Arrival.DUPLICATE, Arrival.LATE]


async def test_a_released_claim_is_due_at_once_and_claimable_again(stores) -> None:
    one, two = stores
    key = JoinKey("heart_disease", str(uuid.uuid4()))
    await add(one, key, "hungary", "{}", now=100.0, deadline=102.0)
    assert await claim(one, key, now=100.5) is not None
    assert await claim(two, key, now=101.0) is None  # leased
    await one.release_many([key], now=101.0)
    assert await two.due(now=101.0, limit=10) == [key]
    assert await claim(two, key, now=101.0) is not None
    await two.emitted_many([key])
    await one.release_many([key], now=102.0)  # a late release never reopens an emitted join
    assert await one.due(now=1e9, limit=10) == [] and await claim(one, key, now=1e9) is None
