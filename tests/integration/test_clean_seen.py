"""clean's de-duplication scripts on the real Redis, under a namespace of their own: a batch judged in one round
trip, first-wins inside a batch, a re-delivered batch still its own, and what survives a restart (a new client)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.clean.adapters.redis_seen import RedisSeenEvents
from services.clean.dedup import Candidate, Verdict
from shared.settings import Settings

pytestmark = pytest.mark.integration
NEW, EVENT_ID, CONTENT = Verdict.NEW, Verdict.EVENT_ID, Verdict.CONTENT


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    name = f"it-seen-{uuid.uuid4().hex[:8]}"
    yield name
    client = Redis.from_url(Settings().redis_url.get_secret_value())
    keys = [key async for key in client.scan_iter(f"aimass:clean:{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def seen_events(namespace: str, ttl_seconds: int = 600) -> tuple[Redis, RedisSeenEvents]:
    """A fresh client each time, as a restarted process would have."""
    client = Redis.from_url(Settings().redis_url.get_secret_value())
    return client, RedisSeenEvents(client, namespace, ttl_seconds)


async def test_the_same_content_twice_in_one_batch_is_one_new_record(namespace: str) -> None:
    client, seen = await seen_events(namespace)
    batch = [Candidate("e-1", "f-a"), Candidate("e-2", "f-a"), Candidate("e-3", "f-b"), Candidate("e-1", "f-a")]
    assert await seen.judge(batch) == [NEW, CONTENT, NEW, EVENT_ID]
    assert await client.get(f"aimass:clean:{namespace}:content:f-a") == b"e-1"
    assert 0 < await client.ttl(f"aimass:clean:{namespace}:content:f-a") <= 600
    await client.aclose()


async def test_a_batch_judged_again_before_it_was_remembered_is_still_its_own(namespace: str) -> None:
    client, seen = await seen_events(namespace)
    batch = [Candidate("e-1", "f-a"), Candidate("e-2", "f-b")]
    assert await seen.judge(batch) == [NEW, NEW]
    assert await seen.judge(batch) == [NEW, NEW]  # a crash before the acks: the re-delivery emits again
    assert await seen.judge([Candidate("e-9", "f-b")]) == [CONTENT]  # but another id with that content does not
    await client.aclose()


async def test_what_was_remembered_is_a_duplicate_after_a_restart(namespace: str) -> None:
    first, seen = await seen_events(namespace)
    assert await seen.judge([Candidate("e-1", "f-a"), Candidate("e-2", "f-b")]) == [NEW, NEW]
    await seen.remember(["e-1", "e-2"])
    await first.aclose()
    second, restarted = await seen_events(namespace)
    judged = await restarted.judge([Candidate("e-1", "f-a"), Candidate("e-3", "f-b"), Candidate("e-4", "f-c")])
    assert judged == [EVENT_ID, CONTENT, NEW]
    assert 0 < await second.ttl(f"aimass:clean:{namespace}:seen:e-1") <= 600
    await second.aclose()


async def test_an_empty_batch_asks_nothing(namespace: str) -> None:
    nowhere = Redis.from_url("redis://127.0.0.1:1/0")  # any command would fail to connect
    seen = RedisSeenEvents(nowhere, namespace, 600)
    assert await seen.judge([]) == []
    await seen.remember([])
    await nowhere.aclose()
