"""Reading and writing the real broker from tests, with deadlines instead of sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.broker import DEADLETTER_MAX_MESSAGE_BYTES
from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import Topic, topic_name


async def producer(settings: Settings) -> AIOKafkaProducer:
    client = AIOKafkaProducer(**kafka_client_options(settings), acks="all", enable_idempotence=True)
    await client.start()
    return client


class TopicReader:
    """Everything published to a topic after ``open()``, collected until the test finds what it waits for."""

    def __init__(self, settings: Settings, topic: Topic) -> None:
        self.name = topic_name(topic, settings.topic_prefix)
        self.settings = settings
        self.records: list[ConsumerRecord] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def open(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            self.name,
            **kafka_client_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        return self

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait_for(
        self, predicate: Callable[[ConsumerRecord], bool], count: int = 1, timeout: float = 10.0
    ) -> list[ConsumerRecord]:
        assert self._consumer is not None
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records if predicate(r)]
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(found)} of {count} expected records on {self.name} after {timeout} s")
            batches = await self._consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for records in batches.values():
                self.records.extend(records)


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def read_all(settings: Settings, topic: Topic) -> list[ConsumerRecord]:
    """Everything on ``topic`` up to its current end (no consumer group)."""
    name = topic_name(topic, settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=DEADLETTER_MAX_MESSAGE_BYTES,
    )
    await consumer.start()
    try:
        # ensure_topics created every topic with this many partitions (the run's own prefix: none existed before)
        partitions = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[ConsumerRecord] = []
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                out.extend(records)
            await asyncio.sleep(0)
        return out
    finally:
        await consumer.stop()


def desynchronize(producer: AIOKafkaProducer, topic: str, partition: int) -> None:
    """Skip the producer's sequence ahead for one partition, as a batch lost in a broker restart leaves it: the
    broker then rejects its next batch there with ``OutOfOrderSequenceNumber``, as it did in the chaos tests."""
    producer._txn_manager.increment_sequence_number(TopicPartition(topic, partition), 7)  # type: ignore[attr-defined]
