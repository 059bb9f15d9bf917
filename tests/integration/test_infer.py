"""infer on the real broker and Redis: every active model scores, the cache answers repeats, a model promoted
mid-stream serves later records with no record lost and no restart, and a Redis outage only costs the cache."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import SecretStr

from shared.broker import ensure_topics
from shared.schemas.models import ModelCard
from shared.schemas.predictions import Prediction
from shared.schemas.records import CleanRecord
from shared.settings import Settings
from shared.topics import (
    CE_ID,
    CE_TYPE,
    Topic,
    cloudevent_headers,
    decode_headers,
    derived_event_id,
    group_id,
    topic_name,
)
from tests.support.kafka import TopicReader, producer
from tests.support.models import heart_clean_records, heart_task, write_model
from tests.support.processes import ServiceProcess, free_port
from tests.support.processes import test_settings as settings_for
from tests.support.stack import PrivateStack

pytestmark = pytest.mark.integration
TASK = "heart_disease"


def with_models(settings: Settings, sites: tuple[str, ...]) -> dict[str, ModelCard]:
    features = heart_task().feature_names
    return {site: write_model(settings, TASK, site, features, seed=i)[0] for i, site in enumerate(sites)}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Its own prefix, ports and registry: the session's six-service pipeline runs an infer of its own."""
    own = settings_for(tmp_path_factory.mktemp("infer"), f"inf-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture(scope="module")
def records() -> list[CleanRecord]:
    return heart_clean_records(limit_per_hospital=40)


@pytest.fixture(scope="module")
def models(settings: Settings) -> dict[str, ModelCard]:
    return with_models(settings, ("cleveland", "hungary", "pooled"))


@pytest.fixture(scope="module")
def infer(settings: Settings, models: dict[str, ModelCard]) -> Iterator[ServiceProcess]:
    process = ServiceProcess("infer", settings).start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
async def predictions(settings: Settings) -> AsyncIterator[TopicReader]:
    reader = await TopicReader(settings, Topic.PREDICTIONS).open()
    yield reader
    await reader.close()


async def publish_clean(client: AIOKafkaProducer, settings: Settings, records: list[CleanRecord]) -> list[str]:
    """Publishes as clean does; returns each record's ce_id."""
    topic = topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix)
    ids, pending = [], []
    for record in records:
        ce_id = str(uuid.uuid4())
        headers = cloudevent_headers(service="clean", type_="org.aimass.record.cleaned.v1", event_id=ce_id)
        pending.append(
            await client.send(
                topic,
                record.model_dump_json().encode(),
                key=record.patient.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
        )
        ids.append(ce_id)
    await asyncio.gather(*pending)
    return ids


def fresh(records: list[CleanRecord], tag: str) -> list[CleanRecord]:
    return [r.model_copy(update={"record_id": f"{tag}-{r.record_id}"}) for r in records]


def of(tag: str):
    return lambda r: json.loads(r.value)["record_id"].startswith(f"{tag}-")


def parsed(found: list[ConsumerRecord]) -> list[Prediction]:
    return [Prediction.model_validate_json(r.value) for r in found]


async def test_every_active_model_scores_every_record(settings, infer, models, records, predictions) -> None:
    batch = fresh(records[:30], "all")
    client = await producer(settings)
    try:
        ce_ids = await publish_clean(client, settings, batch)
    finally:
        await client.stop()
    found = await predictions.wait_for(of("all"), count=30 * len(models), timeout=30)
    made = parsed(found)
    assert Counter((p.record_id, p.model.site) for p in made) == Counter(
        {(r.record_id, site): 1 for r in batch for site in models}
    )
    assert {p.model.version for p in made if p.model.site == "pooled"} == {models["pooled"].version}
    first, record, ce_id = found[0], batch[0], ce_ids[0]
    headers = decode_headers(first.headers)
    expected_ids = {derived_event_id("infer", ce_id, TASK, site, card.version) for site, card in models.items()}
    ids_of_first = {
        decode_headers(r.headers)[CE_ID] for r in found if json.loads(r.value)["record_id"] == record.record_id
    }
    assert ids_of_first == expected_ids
    assert headers[CE_TYPE] == "org.aimass.prediction.made.v1"
    assert {r.key for r in found if json.loads(r.value)["record_id"] == record.record_id} == {record.patient.encode()}
    assert made[0].features == next(r for r in batch if r.record_id == made[0].record_id).features[TASK].values


async def test_a_repeated_feature_vector_is_a_cache_hit(settings, infer, records, predictions) -> None:
    client = await producer(settings)
    try:
        await publish_clean(client, settings, fresh(records[30:31], "first"))
        first = parsed(await predictions.wait_for(of("first"), count=3, timeout=30))
        await publish_clean(client, settings, fresh(records[30:31], "again"))
        again = parsed(await predictions.wait_for(of("again"), count=3, timeout=30))
    finally:
        await client.stop()
    assert not any(p.cache_hit for p in first)
    assert all(p.cache_hit for p in again)
    assert {p.model.site: p.probability for p in again} == {p.model.site: p.probability for p in first}
    assert metric(infer, 'aimass_infer_cache_total{result="hit"}') >= 3


async def test_a_model_promoted_mid_stream_serves_later_records_without_a_restart(
    settings, infer, models, records, predictions
) -> None:
    pid = infer.process.pid
    stream = fresh(records[40:160], "promote")
    client = await producer(settings)
    try:
        await publish_clean(client, settings, stream[:60])
        await predictions.wait_for(of("promote"), count=60 * 3, timeout=30)
        promoted, _ = write_model(settings, TASK, "pooled", heart_task().feature_names, seed=42)
        retired = models["pooled"].model_copy(update={"status": "retired"})
        released = topic_name(Topic.MODELS_RELEASED, settings.topic_prefix)
        for card in (retired, promoted):  # as train publishes a promotion: the retirement, then the new card
            headers = cloudevent_headers(
                service="train", type_="org.aimass.model.released.v1", event_id=str(uuid.uuid4())
            )
            await client.send_and_wait(
                released, card.model_dump_json().encode(), headers=[(k, v.encode()) for k, v in headers.items()]
            )
        await wait_serving(infer, f"pooled/{promoted.version}")
        await publish_clean(client, settings, stream[60:])
        found = parsed(await predictions.wait_for(of("promote"), count=120 * 3, timeout=45))
    finally:
        await client.stop()
    per_record = Counter(p.record_id for p in found)
    assert set(per_record) == {r.record_id for r in stream} and set(per_record.values()) == {3}
    later = {r.record_id for r in stream[60:]}
    assert {p.model.version for p in found if p.record_id in later and p.model.site == "pooled"} == {promoted.version}
    assert infer.process.pid == pid and infer.process.poll() is None
    models["pooled"] = promoted


def metric(process: ServiceProcess, series: str) -> float:
    text = process.get("/metrics", timeout=5).text
    return float(next(line for line in text.splitlines() if line.startswith(series + " ")).split()[-1])


async def wait_serving(process: ServiceProcess, model: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while model not in process.get("/readyz", timeout=5).json()["models"].get(TASK, []):
        assert asyncio.get_running_loop().time() < deadline, f"{model} not served within {timeout} s"
        await asyncio.sleep(0.2)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateStack]:
    """Its own Redis (the shared one must keep running for everyone); Kafka stays the shared broker."""
    stack = PrivateStack(tmp_path, "unused.")
    stack.start_redis()
    yield stack
    stack.stop_redis()


async def test_redis_stopped_mid_stream_predictions_continue_without_the_cache(
    tmp_path: Path, private_redis: PrivateStack, records
) -> None:
    base = settings_for(tmp_path / "var", f"it-redis-{uuid.uuid4().hex[:6]}.")
    settings = base.model_copy(
        update={"redis_url": SecretStr(f"redis://127.0.0.1:{private_redis.redis_port}/0"), "infer_port": free_port()}
    )
    await ensure_topics(settings)
    with_models(settings, ("pooled",))
    process = ServiceProcess("infer", settings).start()
    reader = await TopicReader(settings, Topic.PREDICTIONS).open()
    client = await producer(settings)
    try:
        await asyncio.to_thread(process.wait_ready)
        await publish_clean(client, settings, fresh(records[:20], "before"))
        await reader.wait_for(of("before"), count=20, timeout=30)
        private_redis.stop_redis()
        await publish_clean(client, settings, fresh(records[:20], "during"))  # cached vectors: Redis is gone
        during = parsed(await reader.wait_for(of("during"), count=20, timeout=30))
        assert not any(p.cache_hit for p in during)
        ready = process.get("/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] == "down"
        assert ready.json()["cache"]["state"] == "bypassed"
        assert metric(process, 'aimass_infer_cache_total{result="error"}') >= 20
        assert process.process.poll() is None
    finally:
        await client.stop()
        await reader.close()
        process.stop()


async def test_consumer_lag_of_its_group_is_exported(settings, infer) -> None:
    topic = topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix)
    group = group_id("infer", settings.topic_prefix)
    series = [
        f'aimass_consumer_lag{{group="{group}",partition="{p}",service="infer",topic="{topic}"}}'
        for p in range(settings.topic_partitions)
    ]
    deadline = asyncio.get_running_loop().time() + 15
    while True:  # every record the module published has been scored and committed: the lag comes back to 0
        text = infer.get("/metrics", timeout=5).text
        found = {
            line.split(" ")[0]: float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] in series
        }
        if len(found) == len(series) and not any(found.values()):
            break
        assert asyncio.get_running_loop().time() < deadline, f"lag series missing or above 0: {found}"
        await asyncio.sleep(0.5)
