"""Where missing records stopped: each topic of the pipeline read from the beginning, for a failure message."""

from __future__ import annotations

import json
from collections.abc import Iterable

from shared.settings import Settings
from shared.topics import Topic
from tests.support.kafka import read_all

STAGES = (Topic.RECORDS_INGESTED, Topic.RECORDS_CLEAN, Topic.PREDICTIONS, Topic.PREDICTIONS_FUSED, Topic.REPORTS)


async def found_on(settings: Settings, topic: Topic, record_ids: set[str]) -> set[str]:
    """Which of ``record_ids`` the whole topic holds, read up to its end offsets of now."""
    held = (json.loads(m.value).get("record_id") for m in await read_all(settings, topic))
    return {record_id for record_id in held if record_id in record_ids}


async def trace(settings: Settings, record_ids: Iterable[str]) -> str:
    """``records.ingested 5/5, records.clean 5/5, predictions 0/5, ...``: the first short count is where they
    stopped."""
    wanted = set(record_ids)
    counts = []
    for topic in STAGES:
        counts.append(f"{topic.value} {len(await found_on(settings, topic, wanted))}/{len(wanted)}")
    return ", ".join(counts)
