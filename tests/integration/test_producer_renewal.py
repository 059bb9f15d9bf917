"""A producer whose sequence the broker rejects (``OutOfOrderSequenceNumber``, as after a broker restart that caught a
batch in flight; aiokafka #1017) is replaced by the service's producer watch: readiness says ``down`` meanwhile,
sends fail (so the records stay uncommitted), and publishing works again without a restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from services.infer.adapters.kafka_out import KafkaEventSender
from shared.producers import CHECK_SECONDS, broker_producer
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic
from tests.support.kafka import TopicReader, desynchronize

pytestmark = pytest.mark.integration


@dataclass
class Outgoing:
    key: bytes
    value: bytes
    event_id: str


def renewals(service: Service, producer: str) -> float:
    return (
        service.metrics.registry.get_sample_value(
            "aimass_producer_renewals_total",
            {"service": service.name, "producer": producer, "error": "OutOfOrderSequenceNumber"},
        )
        or 0.0
    )


async def until_renewed(service: Service, producer: str) -> float:
    started = time.monotonic()
    while renewals(service, producer) < 1:
        assert time.monotonic() - started < 5 * CHECK_SECONDS, f"the {producer} producer was not replaced"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_the_brokers_dead_producer_is_replaced_and_publishing_resumes(settings: Settings) -> None:
    service = Service("ingest", settings)
    topic = service.topic(Topic.AUDIT)
    reader = await TopicReader(settings, Topic.AUDIT).open()
    await service._connect_checked_producer()  # as the service's start-up does
    await service.broker.start()
    try:
        await service.broker.publish(b"before", topic, partition=0)
        dead = broker_producer(service.broker)
        assert dead is not None
        assert (await service.readiness())["kafka"] is True and service.producers.failed() == []
        desynchronize(dead, topic, 0)

        for _ in range(2):  # not once: every later send to that partition is rejected too
            with pytest.raises(OutOfOrderSequenceNumber):
                await service.broker.publish(b"rejected", topic, partition=0)
        assert (await service.readiness())["kafka"] is False
        assert service.producers.failed() == ["broker"]

        await service.producers.start()
        await until_renewed(service, "broker")
        assert broker_producer(service.broker) is not dead
        marker = uuid.uuid4().hex.encode()
        await service.broker.publish(marker, topic)
        await reader.wait_for(lambda r: r.value == marker)
        assert (await service.readiness())["kafka"] is True
        assert service.producers.failed() == []
    finally:
        await service.producers.stop()
        await service.broker.stop()
        await reader.close()
        await service.redis.aclose()


async def test_infers_own_sender_is_replaced_too(settings: Settings) -> None:
    service = Service("infer", settings)
    sender = KafkaEventSender(settings, "infer", service.topic(Topic.AUDIT), entity="probe", verb="sent")
    service.producers.watch("predictions", sender.current, sender.renew)
    reader = await TopicReader(settings, Topic.AUDIT).open()
    await sender.start()
    try:
        await sender.send_all([Outgoing(b"k", b"before", uuid.uuid4().hex)])
        dead = sender.current()
        assert dead is not None
        for partition in range(settings.topic_partitions):
            desynchronize(dead, sender.topic, partition)
        with pytest.raises(OutOfOrderSequenceNumber):
            await sender.send_all([Outgoing(b"k", b"rejected", uuid.uuid4().hex)])

        assert await service.producers.check() == ["predictions"]
        assert sender.current() is not dead and renewals(service, "predictions") == 1
        marker = uuid.uuid4().hex.encode()
        await sender.send_all([Outgoing(b"k", marker, uuid.uuid4().hex)])
        await reader.wait_for(lambda r: r.value == marker)
        assert await service.producers.check() == []
    finally:
        await sender.stop()
        await reader.close()
        await service.redis.aclose()
