"""The broker restarts and Redis goes away mid-stream, under all five streaming services at once: every service says
so on ``/readyz`` (503, the dependency ``down``), reconnects by itself (200 again), and every record still comes out
as exactly one fused result and one report.

Redis runs without persistence here (deploy/redis/redis.sh), so its restart also wipes clean's de-duplication sets,
infer's cache and fuse's open joins: the records in flight must survive that too.

A service whose idempotent producer had a batch in flight when the broker went down can get
``OutOfOrderSequenceNumber`` on every later send (aiokafka does not reset its producer id; aiokafka issue #1017).
Each service's producer watch (``shared/producers.py``) replaces such a producer by itself; the summary line says how
many were replaced, and no service is restarted by the test.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.documents import heart_documents
from tests.chaos.pipeline import Pipeline, drain_timeout, records_per_run, time_limit, wait_until, write_summary
from tests.chaos.tally import TopicTally

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(time_limit())]

OUTAGE_SECONDS = 3.0


async def progressed(fused: TopicTally, count: int) -> None:
    """Until ``count`` fused results of the batch are out: the fault then strikes a pipeline at work."""
    await wait_until(
        lambda: len(fused.records) >= count,
        drain_timeout(count),
        lambda: f"{len(fused.records)} of {count} fused",
        fused,
    )


async def test_broker_restart_and_redis_outage_mid_stream_lose_nothing(pipeline: Pipeline) -> None:
    stack = pipeline.stack
    documents = heart_documents(records_per_run())
    thirds = [documents[i * len(documents) // 3 : (i + 1) * len(documents) // 3] for i in range(3)]
    expected = [d.record_id for d in documents]
    fused, reports = await pipeline.results()
    in_flight = []
    started = time.monotonic()
    try:
        await pipeline.publish(thirds[0])
        await progressed(fused, len(thirds[0]) // 4)
        stack.stop_kafka()
        in_flight.append(len(expected) - len(fused.records))
        await pipeline.wait_readiness(503, "kafka", "down")
        stack.start_kafka()
        await pipeline.wait_readiness(200, "kafka", "ok", timeout=90)

        await pipeline.publish(thirds[1])
        await progressed(fused, len(thirds[0]) + len(thirds[1]) // 4)
        stack.stop_redis()
        in_flight.append(len(expected) - len(fused.records))
        await pipeline.wait_readiness(503, "redis", "down")
        await pipeline.publish(thirds[2])  # Kafka keeps taking input while Redis is away
        await asyncio.sleep(OUTAGE_SECONDS)
        stack.start_redis()
        await pipeline.wait_readiness(200, "redis", "ok")

        await pipeline.drain(expected, fused, reports)
    finally:
        await fused.close()
        await reports.close()
    seconds = time.monotonic() - started

    outcomes = pipeline.outcomes(expected, fused, reports)
    write_summary(
        f"chaos broker restart + Redis outage: {len(documents)} records, 1 Kafka restart, 1 Redis restart (empty), "
        f"records not yet fused at each fault {in_flight}, lost {sum(len(o.lost) for o in outcomes)}, "
        f"duplicates absorbed {fused.duplicates} fused, {reports.duplicates} reports, "
        f"failed producers replaced {pipeline.producer_renewals() or 'none'}; {seconds:.1f} s"
    )
    assert [p for o in outcomes for p in o.problems] == []
