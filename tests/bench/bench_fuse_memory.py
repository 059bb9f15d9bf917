"""fuse's Redis memory per join, open and after its emission, with real heart-disease predictions.

An emitted join stays for the dedup TTL (7 days) so a repeat can be told from a late model; this measures what that
costs: Redis's own ``MEMORY USAGE`` of the join hash with five models' predictions, before and after *emitted*.
``python -m tests.bench.bench_fuse_memory`` runs it alone and prints the section (Redis must be running).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from redis.asyncio import Redis

from services.fuse.adapters.redis_joins import RedisJoinStore
from services.fuse.ports import Arriving, JoinKey
from shared.schemas.models import ModelRef
from shared.schemas.predictions import Prediction
from shared.settings import Settings
from tests.support.models import heart_clean_records
from tests.support.processes import test_settings

SITES = ("cleveland", "hungary", "va-long-beach", "switzerland", "pooled")
RECORDS_PER_DAY = 1_000_000
TTL_DAYS = 7


async def measure(settings: Settings, records: int = 20) -> tuple[int, float, float]:
    """(prediction bytes, mean join bytes open, mean join bytes emitted) over ``records`` real records."""
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    store = RedisJoinStore(redis, f"bench-memory-{uuid.uuid4().hex[:6]}", ttl_seconds=600)
    open_sizes, emitted_sizes, payload = [], [], 0
    try:
        for record in heart_clean_records(records // 4 + 1)[:records]:
            key = JoinKey("heart_disease", record.record_id)
            for site in SITES:
                prediction = Prediction(
                    record_id=record.record_id,
                    patient=record.patient,
                    hospital=record.hospital,
                    task="heart_disease",
                    model=ModelRef(task="heart_disease", site=site, version="20261129T120000Z"),
                    probability=0.5,
                    label=1,
                    features=record.features["heart_disease"].values,
                    quality_flags=record.quality_flags,
                ).model_dump_json()
                payload = max(payload, len(prediction))
                await store.add_many([Arriving(key, site, prediction, 102.0)], now=100.0)
            join = f"aimass:fuse:{store.namespace}:join:{key.task}:{key.record_id}"
            open_sizes.append(await redis.memory_usage(join))
            await store.claim_many([key], now=103.0)
            await store.emitted_many([key])
            emitted_sizes.append(await redis.memory_usage(join))
    finally:
        keys = [k async for k in redis.scan_iter(f"aimass:fuse:{store.namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return payload, sum(open_sizes) / len(open_sizes), sum(emitted_sizes) / len(emitted_sizes)


async def run(settings: Settings) -> str:
    payload, open_bytes, emitted_bytes = await measure(settings)
    kept = RECORDS_PER_DAY * TTL_DAYS * emitted_bytes / 2**30
    return "\n".join(
        [
            "## fuse: Redis memory per join",
            "",
            f"Five models' predictions of a real heart record (up to {payload:,} bytes each): the join hash takes "
            f"{open_bytes:,.0f} bytes while open and {emitted_bytes:,.0f} bytes once emitted (the predictions emptied, "
            f"the models' names kept for the {TTL_DAYS}-day dedup TTL; Redis `MEMORY USAGE`, mean of 20 records). At "
            f"{RECORDS_PER_DAY:,} records a day that is about {kept:.1f} GiB of emitted joins.",
            "",
        ]
    )


async def _main() -> None:
    with tempfile.TemporaryDirectory() as var:
        print(await run(test_settings(Path(var), "bench-")))


if __name__ == "__main__":
    asyncio.run(_main())
