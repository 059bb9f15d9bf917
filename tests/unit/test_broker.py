"""The project's delivery rules on top of FastStream's subscriber (no broker needed)."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber import usecase

from shared.broker import without_idle_pause


def record(offset: int) -> ConsumerRecord:
    return ConsumerRecord("t", 0, offset, 0, 0, None, b"v", None, 1, 0, [])


class ScriptedConsumer:
    """``getmany`` answers from a script: nothing yet, then two partitions' records."""

    def __init__(self, *answers: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.calls.append((timeout_ms, max_records))
        return self.answers.pop(0)


async def test_an_empty_poll_is_followed_by_the_next_without_fast_streams_pause(monkeypatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(usecase.anyio, "sleep", sleep)
    subscriber = KafkaBroker().subscriber("t", batch=True, group_id="g", batch_timeout_ms=20, max_records=300)
    arrived = {TopicPartition("t", 0): [record(0), record(1)], TopicPartition("t", 1): [record(2)]}
    consumer = ScriptedConsumer({}, arrived)

    original = await subscriber.get_msg(ScriptedConsumer({}))
    assert original == () and slept == [0.02]  # what FastStream does by itself: a record arriving now waits 20 ms

    without_idle_pause(subscriber)
    assert await subscriber.get_msg(consumer) == ()
    assert [r.offset for r in await subscriber.get_msg(consumer)] == [0, 1, 2]
    assert slept == [0.02] and consumer.calls == [(20, 300), (20, 300)]
