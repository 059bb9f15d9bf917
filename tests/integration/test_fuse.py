"""fuse as a real process on the real broker and Redis: the issue's done-when cases.

The test writes model cards into its own registry and its own task files (the shipped heart_disease task, and a
copy with a long deadline for the restart case), then publishes ``Prediction`` events as infer would.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer, ConsumerRecord
from redis.asyncio import Redis

from shared.broker import ensure_topics
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import CE_ID, Topic, cloudevent_headers, decode_headers, derived_event_id, event_type, topic_name
from tests.support.factories.fuse import THREE_CARDS, card, expected_weights_for_cleveland, prediction, write_card
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration

SLOW_TASK = "heart_disease_slow"  # the shipped task with a deadline long enough to outlive a restart
RESULT_TIMEOUT = 40.0


@pytest.fixture(scope="module")
def fuse_settings(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Settings:
    """Own topic prefix and registry, so no other test's fuse (or cards) can take part in these joins."""
    own = settings_for(tmp_path_factory.mktemp("fuse-var"), f"it-fuse-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own))
    models = own.data_path / "models"
    for model in THREE_CARDS:
        write_card(models, model)
        write_card(models, model.model_copy(update={"task": SLOW_TASK}))
    write_card(models, card("cleveland", "v0", status="retired", cross_site={"hungary": 0.5}))
    return own


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tasks")
    shipped = yaml.safe_load((PROJECT_ROOT / "tasks" / "heart_disease.yaml").read_text())
    (directory / "heart_disease.yaml").write_text(yaml.safe_dump(shipped))
    slow = shipped | {"name": SLOW_TASK, "fusion": shipped["fusion"] | {"deadline_seconds": 120}}
    (directory / f"{SLOW_TASK}.yaml").write_text(yaml.safe_dump(slow))
    return directory


@pytest.fixture(scope="module")
def fuse(fuse_settings: Settings, tasks_dir: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess("fuse", fuse_settings, AIMASS_TASKS_DIR=str(tasks_dir)).start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
async def fused(fuse_settings: Settings) -> AsyncIterator[TopicReader]:
    reader = await TopicReader(fuse_settings, Topic.PREDICTIONS_FUSED).open()
    yield reader
    await reader.close()


@pytest.fixture
async def kafka(fuse_settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    client = await producer(fuse_settings)
    yield client
    await client.stop()


async def send(kafka: AIOKafkaProducer, settings: Settings, *predictions: Prediction) -> None:
    for p in predictions:
        headers = cloudevent_headers(
            service="infer",
            type_=event_type("prediction", "made"),
            event_id=derived_event_id("infer", p.record_id, p.model.site, p.model.version),
        )
        await kafka.send_and_wait(
            topic_name(Topic.PREDICTIONS, settings.topic_prefix),
            p.model_dump_json().encode(),
            key=p.patient.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )


def results_for(record_id: str) -> Callable[[ConsumerRecord], bool]:
    return lambda r: json.loads(r.value)["record_id"] == record_id


def parse(record: ConsumerRecord) -> FusedPrediction:
    return FusedPrediction.model_validate_json(record.value)


async def only_result(reader: TopicReader, record_id: str, settle: float = 4.0) -> FusedPrediction:
    """The record's one fused result, after waiting ``settle`` seconds more for any second one."""
    [first] = await reader.wait_for(results_for(record_id), timeout=RESULT_TIMEOUT)
    with pytest.raises(AssertionError):
        await reader.wait_for(results_for(record_id), count=2, timeout=settle)
    assert decode_headers(first.headers)[CE_ID] == derived_event_id("fuse", record_id, json.loads(first.value)["task"])
    return parse(first)


def three(record_id: str, task: str = "heart_disease") -> list[Prediction]:
    return [
        prediction(site, p, record_id=record_id, task=task)
        for site, p in (("hungary", 0.62), ("va-long-beach", 0.81), ("switzerland", 0.70))
    ]


async def test_three_predictions_in_any_order_become_one_result_with_the_cross_site_weights(
    fuse, fuse_settings, fused, kafka
) -> None:
    shuffler = random.Random(7)
    records = [str(uuid.uuid4()) for _ in range(4)]
    for record_id in records:
        predictions = three(record_id)
        shuffler.shuffle(predictions)
        await send(kafka, fuse_settings, *predictions)
    for record_id in records:
        result = await only_result(fused, record_id, settle=0.5)
        weights = {c.model.site: c.weight for c in result.contributions}
        assert weights == pytest.approx(expected_weights_for_cleveland())
        expected = sum(weights[p.model.site] * p.probability for p in three(record_id))
        assert result.probability == pytest.approx(expected) and result.label == 1
        assert not result.needs_review and result.review_reasons == []
        assert result.method == "weighted_average" and result.agreement == pytest.approx(1 - (0.81 - 0.62))
    metrics = fuse.get("/metrics", timeout=5).text
    assert 'aimass_fuse_results_total{method="weighted_average",task="heart_disease"}' in metrics
    ready = fuse.get("/readyz", timeout=5).json()
    assert ready["expected_models"]["heart_disease"] == sorted(
        f"heart_disease/{c.site}/{c.version}" for c in THREE_CARDS
    )


async def test_a_missing_model_after_the_deadline_gives_a_result_flagged_for_review(
    fuse, fuse_settings, fused, kafka
) -> None:
    record_id = str(uuid.uuid4())
    await send(kafka, fuse_settings, *three(record_id)[:2])  # Switzerland never answers
    result = await only_result(fused, record_id)
    assert result.needs_review
    assert "no prediction from heart_disease/switzerland/v1 within 2 s" in result.review_reasons
    assert "only 2 of 3 expected models answered" in result.review_reasons
    assert {c.model.site for c in result.contributions} == {"hungary", "va-long-beach"}
    assert sum(c.weight for c in result.contributions) == pytest.approx(1.0)
    # Switzerland answers late: counted, not fused again.
    await send(kafka, fuse_settings, three(record_id)[2])
    metrics = ""
    for _ in range(50):
        metrics = fuse.get("/metrics", timeout=5).text
        if 'aimass_fuse_late_predictions_total{task="heart_disease"} 1.0' in metrics:
            break
        await asyncio.sleep(0.2)
    assert 'aimass_fuse_late_predictions_total{task="heart_disease"} 1.0' in metrics
    assert 'aimass_fuse_timeouts_total{task="heart_disease"} 1.0' in metrics
    assert len([r for r in fused.records if results_for(record_id)(r)]) == 1


async def test_a_duplicate_prediction_changes_nothing(fuse, fuse_settings, fused, kafka) -> None:
    record_id = str(uuid.uuid4())
    hungary, va, swiss = three(record_id)
    changed = prediction("hungary", 0.05, record_id=record_id)  # same model again, another answer
    await send(kafka, fuse_settings, hungary, hungary, changed, va, va, swiss, swiss, hungary)
    result = await only_result(fused, record_id)
    assert {c.model.site: c.probability for c in result.contributions} == {
        "hungary": 0.62,
        "va-long-beach": 0.81,
        "switzerland": 0.70,
    }
    assert not result.needs_review


async def joined(redis: Redis, settings: Settings, task: str, record_id: str, models: int) -> None:
    """Wait until fuse holds ``models`` predictions of the join in Redis."""
    namespace = settings.topic_prefix.rstrip(".")
    key = f"aimass:fuse:{namespace}:join:{task}:{record_id}"
    for _ in range(200):
        fields = await redis.hkeys(key)
        if sum(f.startswith(b"model:") for f in fields) >= models:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fuse did not hold {models} predictions of {task}/{record_id} in Redis")


async def test_a_restart_in_the_middle_of_a_join_still_gives_exactly_one_result(
    fuse, fuse_settings, fused, kafka, redis
) -> None:
    complete_later = str(uuid.uuid4())  # long deadline: the join must outlive the restart and complete after it
    times_out_while_down = str(uuid.uuid4())  # 2 s deadline: passes while fuse is down, fused after the restart
    await send(kafka, fuse_settings, *three(complete_later, SLOW_TASK)[:2], *three(times_out_while_down)[:2])
    for task, record_id in ((SLOW_TASK, complete_later), ("heart_disease", times_out_while_down)):
        await joined(redis, fuse_settings, task, record_id, models=2)
    fuse.kill()
    fuse.start()
    fuse.wait_ready()
    await send(kafka, fuse_settings, three(complete_later, SLOW_TASK)[2])
    result = await only_result(fused, complete_later)
    assert len(result.contributions) == 3 and not result.needs_review
    timed_out = await only_result(fused, times_out_while_down, settle=0.5)
    assert timed_out.needs_review and len(timed_out.contributions) == 2


async def test_a_model_released_while_running_joins_the_expected_set(fuse, fuse_settings, fused, kafka) -> None:
    pooled = card("pooled", "v1", task=SLOW_TASK, cross_site={"cleveland": 0.9, "hungary": 0.9})
    headers = cloudevent_headers(service="train", type_=event_type("model", "released"), event_id=str(uuid.uuid4()))
    await kafka.send_and_wait(
        topic_name(Topic.MODELS_RELEASED, fuse_settings.topic_prefix),
        pooled.model_dump_json().encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )
    for _ in range(100):
        if f"{SLOW_TASK}/pooled/v1" in fuse.get("/readyz", timeout=5).json()["expected_models"][SLOW_TASK]:
            break
        await asyncio.sleep(0.2)
    record_id = str(uuid.uuid4())
    await send(kafka, fuse_settings, *three(record_id, SLOW_TASK))
    with pytest.raises(AssertionError):  # three of four: the join waits for the pooled model
        await fused.wait_for(results_for(record_id), timeout=4.0)
    await send(kafka, fuse_settings, prediction("pooled", 0.9, record_id=record_id, task=SLOW_TASK))
    result = await only_result(fused, record_id, settle=0.5)
    assert len(result.contributions) == 4 and not result.needs_review
