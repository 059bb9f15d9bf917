"""clean alone on the real broker and Redis: records/s from ``records.ingested`` to ``records.clean``.

The input is published first (the real UCI heart rows, each as its hospital sends it, repeated under fresh patient
pseudonyms so no two are content duplicates); then clean starts as a real process and the clock runs from its first
output to its last (broker timestamps), so start-up is not counted. ``python -m tests.bench.bench_clean [N]`` runs
it alone and prints the section.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import Topic, cloudevent_headers, event_type, topic_name
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess, test_settings

RECORDS = 5_000


def _values(count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` canonical records, all of different content."""
    from services.cli.scenario.heart import records_by_hospital
    from tests.support.factories.clean import SENDS, record_of

    documents = [(h, d) for h, docs in records_by_hospital().items() for d in docs]
    out = []
    for n in range(count):
        hospital, doc = documents[n % len(documents)]
        record = record_of({**SENDS[hospital](doc), "patient_id": f"B-{n}"}, hospital, f"m-{n}")
        out.append((record.patient.encode(), record.model_dump_json().encode()))
    return out


async def _publish(settings: Settings, values: list[tuple[bytes, bytes]]) -> None:
    client = await producer(settings)
    topic = topic_name(Topic.RECORDS_INGESTED, settings.topic_prefix)
    try:
        pending = []
        for key, value in values:
            headers = cloudevent_headers(
                service="ingest", type_=event_type("record", "ingested"), event_id=str(uuid.uuid4())
            )
            pending.append(
                await client.send(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
            )
        await asyncio.gather(*pending)
    finally:
        await client.stop()


async def measure(settings: Settings, count: int = RECORDS) -> tuple[float, float, int]:
    """(records/s between first and last output, seconds from process start to last output, outputs)."""
    # Topics of its own: every record on them is this measurement's, whatever other benchmarks ran before.
    settings = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}clean-{uuid.uuid4().hex[:6]}."})
    await ensure_topics(settings)
    await _publish(settings, _values(count))
    reader = await TopicReader(settings, Topic.RECORDS_CLEAN).open()
    started = time.monotonic()
    clean = ServiceProcess("clean", settings).start()
    try:
        found = await reader.wait_for(lambda _: True, count=count, timeout=600)
        wall = time.monotonic() - started
    finally:
        clean.stop()
        await reader.close()
    stamps = sorted(r.timestamp for r in found)
    span = (stamps[-1] - stamps[0]) / 1000
    return (len(found) - 1) / span if span else float("inf"), wall, len(found)


async def run(settings: Settings, count: int = RECORDS) -> str:
    rate, wall, found = await measure(settings, count)
    return "\n".join(
        [
            "## clean: records.ingested → records.clean",
            "",
            f"{count:,} real heart records published first, then clean started as a process: {rate:,.0f} records/s "
            f"between its first and last output; {wall:.1f} s from process start to the last of {found:,} outputs.",
            "",
        ]
    )


async def _main(count: int) -> None:
    with tempfile.TemporaryDirectory() as var:
        print(await run(test_settings(Path(var), "bench-"), count))


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else RECORDS))
