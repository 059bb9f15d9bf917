"""Two infer processes in one consumer group share the partitions of records.clean, and both consume."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.group import MemberAssignment

from shared.broker import ensure_topics
from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import CE_SOURCE, Topic, group_id, topic_name
from tests.support.kafka import producer
from tests.support.processes import ServiceProcess, free_port


@pytest.fixture
def own_settings(settings: Settings) -> Settings:
    """A topic prefix of its own, so a consumer group of its own: the session's other infer processes are in
    another."""
    own = settings.model_copy(update={"topic_prefix": f"replicas-{uuid.uuid4().hex[:8]}."})
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture
def two_infers(own_settings: Settings) -> Iterator[list[ServiceProcess]]:
    replicas = [ServiceProcess("infer", own_settings, AIMASS_INFER_PORT=str(free_port())).start() for _ in range(2)]
    try:
        for replica in replicas:
            replica.wait_ready()
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


async def partitions_by_member(settings: Settings, topic: str) -> dict[str, set[int]]:
    """The members of the deployment's infer group that hold partitions of ``topic``."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group_id("infer", settings.topic_prefix)])
    finally:
        await admin.close()
    held: dict[str, set[int]] = {}
    for group in described[0].groups:
        for member_id, _client, _host, _metadata, assignment_bytes in group[5]:
            assignment = MemberAssignment.decode(assignment_bytes) if assignment_bytes else None
            for name, partitions in assignment.assignment if assignment else []:
                if name == topic and partitions:
                    held.setdefault(member_id, set()).update(partitions)
    return held


def received_on(replica: ServiceProcess, topic: str) -> float:
    text = replica.get("/metrics", timeout=3).text
    pattern = rf'^faststream_received_messages_total\{{[^}}]*handler="{re.escape(topic)}"[^}}]*\}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, flags=re.M))


async def test_two_replicas_split_records_clean_and_both_consume(
    own_settings: Settings, two_infers: list[ServiceProcess]
) -> None:
    settings = own_settings
    topic = topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix)
    deadline = time.monotonic() + 60
    while True:  # the second member's join triggers a rebalance; wait for it to settle
        held = await partitions_by_member(settings, topic)
        if len(held) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(held) == 2, f"members holding {topic}: {held}"
    first, second = held.values()
    assert first and second and not first & second
    assert first | second == set(range(settings.topic_partitions))

    # One record per partition: whichever replica owns it must consume it (undecodable: it is dead-lettered).
    client = await producer(settings)
    try:
        for partition in range(settings.topic_partitions):
            await client.send_and_wait(
                topic, b"not a clean record", partition=partition, headers=[(CE_SOURCE, b"replica-test")]
            )
    finally:
        await client.stop()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(received_on(r, topic) > 0 for r in two_infers):
        time.sleep(0.5)
    counts = [received_on(r, topic) for r in two_infers]
    assert all(c > 0 for c in counts), f"records.clean received per replica: {counts}"
    assert sum(counts) >= settings.topic_partitions
    for replica in two_infers:
        assert "assigned to partitions" in replica.log_path.read_text()
