"""Where missing records stopped: each topic of the pipeline read from the beginning, for a failure message."""

from __future__ import annotations

import json
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer

from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import Topic, topic_name

STAGES = (Topic.RECORDS_INGESTED, Topic.RECORDS_CLEAN, Topic.PREDICTIONS, Topic.PREDICTIONS_FUSED, Topic.REPORTS)


async def found_on(settings: Settings, topic: Topic, record_ids: set[str]) -> set[str]:
    """Which of ``record_ids`` the whole topic holds, read up to its end offsets of now."""
    consumer = AIOKafkaConsumer(
        topic_name(topic, settings.topic_prefix),
        **kafka_client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: set[str] = set()
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while any(await consumer.position(p) < end for p, end in ends.items()):
            for records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                found.update(r for r in (json.loads(m.value).get("record_id") for m in records) if r in record_ids)
    finally:
        await consumer.stop()
    return found


async def trace(settings: Settings, record_ids: Iterable[str]) -> str:
    """``records.ingested 5/5, records.clean 5/5, predictions 0/5, ...``: the first short count is where they
    stopped."""
    wanted = set(record_ids)
    counts = []
    for topic in STAGES:
        counts.append(f"{topic.value} {len(await found_on(settings, topic, wanted))}/{len(wanted)}")
    return ", ".join(counts)
