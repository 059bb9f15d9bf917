"""clean while its Redis is down, on the shared broker and a private Redis: readiness says so, the batch is not
committed, nothing comes out half-judged, and every record comes out once Redis is back."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import Topic
from tests.integration.test_clean import send, unique
from tests.support.factories.clean import heart_document, record_of
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess
from tests.support.processes import test_settings as settings_for
from tests.support.stack import PrivateStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    own = PrivateStack(tmp_path_factory.mktemp("redis"), "unused.")
    own.start_redis()  # the Redis alone: Kafka is the shared one
    yield own
    own.stop_redis()


@pytest.fixture(scope="module")
def settings(stack: PrivateStack, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    own = settings_for(Path(tmp_path_factory.mktemp("clean")), f"cln-redis-{uuid.uuid4().hex[:8]}.")
    own = own.model_copy(update={"redis_url": stack.settings.redis_url})
    asyncio.run(ensure_topics(own))
    return own


async def wait_for_redis(clean: ServiceProcess, state: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (checks := clean.get("/readyz", timeout=5).json()["checks"])["redis"] != state:
        assert asyncio.get_running_loop().time() < deadline, f"readiness {checks}, expected redis {state}"
        await asyncio.sleep(0.3)


async def test_records_sent_while_redis_is_down_come_out_once_it_is_back(
    stack: PrivateStack, settings: Settings
) -> None:
    clean = ServiceProcess("clean", settings).start()
    kafka = await producer(settings)
    cleaned = await TopicReader(settings, Topic.RECORDS_CLEAN).open()
    try:
        clean.wait_ready()
        stack.stop_redis()
        await wait_for_redis(clean, "down")
        records = [record_of(unique(heart_document()), "cleveland", f"m-{uuid.uuid4()}") for _ in range(5)]
        for record in records:
            await send(kafka, settings, record, str(uuid.uuid4()))
        wanted = {record.record_id for record in records}
        with pytest.raises(AssertionError):  # nothing is emitted without de-duplication
            await cleaned.wait_for(lambda m: json.loads(m.value)["record_id"] in wanted, timeout=4)
        stack.start_redis()
        await wait_for_redis(clean, "ok")
        found = await cleaned.wait_for(lambda m: json.loads(m.value)["record_id"] in wanted, count=5, timeout=60)
        assert {json.loads(m.value)["record_id"] for m in found} == wanted
    finally:
        await cleaned.close()
        await kafka.stop()
        clean.stop()
