"""What arrives on a topic from a given moment on, tallied by record id and ``ce_id`` while a test breaks things.

A plain consumer without a group: it starts at the end of every partition (so earlier batches on the same stack do
not count), keeps its positions through a broker restart (aiokafka reconnects by itself) and commits nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import Topic, event_id_of, topic_name


class TopicTally:
    def __init__(self, settings: Settings, topic: Topic, by_record: bool = True) -> None:
        self.settings = settings
        self.topic = topic
        self.name = topic_name(topic, settings.topic_prefix)
        self.by_record = by_record  # record ids cost a JSON parse per message; progress counts need none
        self.messages = 0
        self.event_ids: Counter[str] = Counter()
        self.records: defaultdict[str, set[str]] = defaultdict(set)  # record id -> the ce_ids it came under
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> TopicTally:
        # Subscribed without a group: every partition, starting at its end (auto_offset_reset="latest").
        consumer = AIOKafkaConsumer(
            self.name,
            **kafka_client_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        for _ in range(100):
            if consumer.assignment():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no partitions of {self.name} assigned")
        for partition in consumer.assignment():  # resolve the end offsets now, before the test publishes anything
            await consumer.position(partition)
        self._task = asyncio.create_task(self._collect(), name=f"tally-{self.name}")
        return self

    async def _collect(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    self._count(record)

    def _count(self, record: ConsumerRecord) -> None:
        self.messages += 1
        event_id = event_id_of(record)
        self.event_ids[event_id] += 1
        if self.by_record:
            self.records[json.loads(record.value)["record_id"]].add(event_id)

    def check(self) -> None:
        """Raise what stopped the collection, if anything did: a silent stop would read as records lost."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()
            raise AssertionError(f"the tally of {self.name} stopped")

    @property
    def duplicates(self) -> int:
        """Messages that repeat a ``ce_id`` already seen: what at-least-once delivery re-sent."""
        return self.messages - len(self.event_ids)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
