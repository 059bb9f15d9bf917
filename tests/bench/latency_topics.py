"""Where each record was seen: a live watcher for the end results, and the Kafka timestamps of every stage.

Every stage publishes with the producer's CreateTime (the topics keep Kafka's default timestamp type), so a record's
timestamp on ``records.ingested``, ``records.clean``, ``predictions``, ``predictions.fused`` and ``reports`` is when
that service handed its output to Kafka. Read after the run, they split the end-to-end latency into stages
without a measuring consumer competing for the CPU while the load runs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import Topic, topic_name
from tests.support.kafka import read_all


def record_id_of(record: ConsumerRecord) -> str | None:
    try:
        value = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    return value.get("record_id") if isinstance(value, dict) else None


@dataclass
class Arrivals:
    """Wall-clock seconds at which the watcher received each awaited record's fused result and report."""

    awaited: set[str]
    fused: dict[str, float] = field(default_factory=dict)
    reports: dict[str, float] = field(default_factory=dict)

    def complete(self) -> bool:
        return len(self.fused) >= len(self.awaited) and len(self.reports) >= len(self.awaited)


class Watcher:
    """Consumes ``predictions.fused`` and ``reports`` while the load runs and stamps each arrival on receipt."""

    def __init__(self, settings: Settings) -> None:
        self.fused_topic = topic_name(Topic.PREDICTIONS_FUSED, settings.topic_prefix)
        self.reports_topic = topic_name(Topic.REPORTS, settings.topic_prefix)
        self.consumer = AIOKafkaConsumer(
            self.fused_topic,
            self.reports_topic,
            **kafka_client_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
        )
        self.arrivals = Arrivals(set())

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def follow(self, arrivals: Arrivals, deadline: float) -> None:
        """Collect until every awaited record has both results, or ``deadline`` (time.monotonic) passes."""
        self.arrivals = arrivals
        while time.monotonic() < deadline and not arrivals.complete():
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.time()
            for partition, records in batches.items():
                into = arrivals.fused if partition.topic == self.fused_topic else arrivals.reports
                for record in records:
                    record_id = record_id_of(record)
                    if record_id in arrivals.awaited and record_id not in into:
                        into[record_id] = now


@dataclass
class StageTimes:
    """Per record id, the Kafka timestamp (ms) of its output on each topic; for predictions the last one and the
    number of models that answered."""

    by_topic: dict[Topic, dict[str, int]]
    predictions: dict[str, int]
    answered: dict[str, int]


async def stage_times(settings: Settings, wanted: set[str]) -> StageTimes:
    by_topic: dict[Topic, dict[str, int]] = {}
    for topic in (Topic.RECORDS_INGESTED, Topic.RECORDS_CLEAN, Topic.PREDICTIONS_FUSED, Topic.REPORTS):
        first: dict[str, int] = {}
        for record in await read_all(settings, topic):
            record_id = record_id_of(record)
            if record_id in wanted and record_id not in first:
                first[record_id] = record.timestamp
        by_topic[topic] = first
    last: dict[str, int] = {}
    answered: dict[str, int] = defaultdict(int)
    for record in await read_all(settings, Topic.PREDICTIONS):
        record_id = record_id_of(record)
        if record_id in wanted:
            last[record_id] = max(last.get(record_id, 0), record.timestamp)
            answered[record_id] += 1
    return StageTimes(by_topic, last, dict(answered))
