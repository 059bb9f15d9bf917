"""ingest end to end on the real broker: DOCUMENTS canonical JSON heart documents (the real UCI rows, all four
hospitals, repeated under fresh message ids) are published to ``ingest.raw`` first; then one ingest process starts
and the clock runs until every record is on ``records.ingested``.

Run alone: ``.venv/bin/python -m tests.bench.bench_ingest_kafka [DOCUMENTS]`` (prints the Markdown section).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import CE_ID, CE_SOURCE, Topic, topic_name
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess
from tests.support.processes import test_settings as settings_for

DOCUMENTS = 5_000


async def _publish_all(settings: Settings, count: int) -> None:
    from services.cli.scenario.heart import records_by_hospital

    documents = [(h, d) for h, ds in records_by_hospital().items() for d in ds]
    client = await producer(settings)
    try:
        sends = []
        for number, (hospital, document) in zip(range(count), itertools.cycle(documents), strict=False):
            headers = [
                (CE_SOURCE, hospital.encode()),
                (CE_ID, f"bench-{number}".encode()),
                ("content-type", b"application/json"),
            ]
            sends.append(
                await client.send(
                    topic_name(Topic.INGEST_RAW, settings.topic_prefix), json.dumps(document).encode(), headers=headers
                )
            )
        await asyncio.gather(*sends)
    finally:
        await client.stop()


async def measure(settings: Settings, count: int = DOCUMENTS) -> tuple[float, float]:
    """(seconds from process start to the last record, seconds from the first record to the last)."""
    await _publish_all(settings, count)
    reader = await TopicReader(settings, Topic.RECORDS_INGESTED).open()
    process = ServiceProcess("ingest", settings)
    try:
        started = time.monotonic()
        process.start()
        await reader.wait_for(lambda _: True, count, timeout=600)
        done = time.monotonic()
        # broker timestamps of the first and last record: the steady rate, without the process start
        stamps = sorted(r.timestamp for r in reader.records)
        return done - started, (stamps[-1] - stamps[0]) / 1000
    finally:
        process.stop()
        await reader.close()


async def run(settings: Settings) -> str:
    own = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}ingest-kafka."})  # a fresh group
    await ensure_topics(own)
    total, steady = await measure(own)
    return "\n".join(
        [
            "### ingest: documents/s on the real broker",
            "",
            "| documents | from process start | documents/s | first to last record | documents/s |",
            "|---:|---:|---:|---:|---:|",
            f"| {DOCUMENTS:,} | {total:.1f} s | {DOCUMENTS / total:,.0f} | {steady:.1f} s "
            f"| {DOCUMENTS / steady:,.0f} |",
            "",
            "Canonical JSON heart documents published first, then one ingest process started.",
            "",
        ]
    )


async def _main(count: int) -> None:
    with tempfile.TemporaryDirectory() as var:
        settings = settings_for(Path(var), f"bench-ingest-{uuid.uuid4().hex[:6]}.")
        await ensure_topics(settings)
        total, steady = await measure(settings, count)
    print(
        f"{count} documents: {total:.1f} s from process start ({count / total:,.0f}/s), "
        f"{steady:.1f} s first to last record ({count / steady:,.0f}/s)"
    )


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENTS))
