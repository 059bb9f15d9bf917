"""kill -9 each streaming service in turn, mid-stream, and restart it: every record still comes out as exactly one
fused result and one report (repeats share their ``ce_id`` and are absorbed), none lost.

"Mid-stream" is measured, not guessed: the kill comes once the victim has put a given share of the batch on its own
output topic, so it dies with work behind it and work in hand, wherever the batch is in the pipeline.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.documents import heart_documents
from tests.chaos.pipeline import (
    OUTPUT_OF,
    STREAMING_SERVICES,
    Pipeline,
    drain_timeout,
    kills_per_run,
    records_per_run,
    time_limit,
    wait_until,
    write_summary,
)
from tests.chaos.tally import TopicTally

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(time_limit())]


async def reached(tally: TopicTally, count: int) -> None:
    await wait_until(
        lambda: tally.messages >= count,
        drain_timeout(count),
        lambda: f"{tally.messages} of {count} on {tally.name}",
        tally,
    )


@pytest.mark.parametrize("victim", STREAMING_SERVICES)
async def test_kill_9_mid_stream_loses_nothing(victim: str, pipeline: Pipeline) -> None:
    documents = heart_documents(records_per_run())
    expected = [d.record_id for d in documents]
    fused, reports = await pipeline.results()
    output = (
        fused
        if victim == "fuse"
        else reports
        if victim == "report"
        else await TopicTally(pipeline.settings, OUTPUT_OF[victim], by_record=False).open()
    )
    per_record = pipeline.models if victim == "infer" else 1  # infer emits one prediction per model
    process = pipeline.services[victim]
    kill_at = [share / (kills_per_run() + 1) for share in range(1, kills_per_run() + 1)]  # shares of the batch
    kills = []
    started = time.monotonic()
    try:
        publishing = asyncio.create_task(pipeline.publish(documents))
        for share in kill_at:
            await reached(output, int(share * len(documents) * per_record))
            process.kill()
            kills.append(output.messages)
            process.start()  # back at once; Kafka kept what it had not committed
        await publishing
        await pipeline.drain(expected, fused, reports)
    finally:
        for tally in {id(t): t for t in (fused, reports, output)}.values():
            await tally.close()
    seconds = time.monotonic() - started

    outcomes = pipeline.outcomes(expected, fused, reports)
    write_summary(
        f"chaos kill -9 {victim}: {len(documents)} records, {len(kills)} kills (at {kills} messages on "
        f"{output.topic.value}), lost {sum(len(o.lost) for o in outcomes)}, duplicates absorbed {output.duplicates} on "
        f"{output.topic.value}, {fused.duplicates} fused, {reports.duplicates} reports; {seconds:.1f} s"
    )
    assert [p for o in outcomes for p in o.problems] == []
    assert len(kills) == len(kill_at)
