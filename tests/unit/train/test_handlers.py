"""train's subscribers without Kafka: bad clean records become dead letters; compaction runs off the event loop and
never loses a record that arrives while it runs."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from services.train.adapters.store import DATA_FILE, ParquetTrainingStore
from services.train.handlers import StoreCleanRecord, TrainRequested
from services.train.metrics import TrainMetrics
from services.train.task_catalog import TaskCatalog
from shared.metrics import ServiceMetrics
from shared.schemas import CleanRecord
from shared.schemas.models import TrainRequest
from shared.settings import PROJECT_ROOT
from tests.support.fakes import RecordingDeadLetters, RecordingPublisher, RefusingWorker, handled
from tests.support.models import heart_clean_records

TASK = "heart_disease"


def raw(offset: int, value: bytes, topic: str = "unit.records.clean") -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, None, value, None, 0, len(value), [("ce_id", f"e-{offset}".encode())])


class HeldCompaction(ParquetTrainingStore):
    """Compaction that waits, in its thread, until the test lets it finish."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.started, self.finish = threading.Event(), threading.Event()

    def compact(self, task: str | None = None) -> None:
        self.started.set()
        assert self.finish.wait(10)
        super().compact(task)


def handlers(store: ParquetTrainingStore):
    """train's two subscribers on the store, each through the subscriber path (``tests.support.fakes.handled``)."""
    deadletters, metrics = RecordingDeadLetters(), ServiceMetrics("train")
    train_metrics, catalog = TrainMetrics(metrics.registry), TaskCatalog(PROJECT_ROOT / "tasks")
    store_clean = StoreCleanRecord(store, catalog, train_metrics)
    requested = TrainRequested(store, catalog, RefusingWorker(), RecordingPublisher(), train_metrics)

    async def on_clean(record: ConsumerRecord) -> None:
        await handled(store_clean, [record], CleanRecord, deadletters=deadletters, metrics=metrics)

    async def on_request(record: ConsumerRecord) -> None:
        await handled(requested, [record], TrainRequest, deadletters=deadletters, metrics=metrics)

    return on_clean, on_request, deadletters, train_metrics


async def test_a_feature_vector_with_a_value_missing_is_dead_lettered_and_nothing_is_stored(tmp_path: Path) -> None:
    store = ParquetTrainingStore(tmp_path)
    store_clean, _, deadletters, _ = handlers(store)
    record = heart_clean_records(1)[0]
    short = record.model_dump_json().replace('"values":[', '"values":[1.0,', 1).encode()  # one value too many
    await store_clean(raw(0, short))
    await store_clean(raw(1, record.model_dump_json().encode()))

    [letter] = deadletters.letters
    assert (letter.offset, letter.reason_class) == (0, "schema")
    assert f"features.{TASK}" in letter.reason and "names but" in letter.reason
    assert list(store.frame(TASK, record.hospital)["_record_id"]) == [record.record_id]


async def test_records_arriving_during_compaction_wait_for_it_and_none_is_lost(tmp_path: Path) -> None:
    store = HeldCompaction(tmp_path)
    store_clean, requested, deadletters, _ = handlers(store)
    first, *later = heart_clean_records(2)
    await store_clean(raw(0, first.model_dump_json().encode()))
    request = raw(1, TrainRequest(task=TASK).model_dump_json().encode(), "unit.train.requests")

    training = asyncio.create_task(requested(request))
    await asyncio.to_thread(store.started.wait, 10)  # the event loop is free while compaction runs
    arriving = [asyncio.create_task(store_clean(raw(2 + i, r.model_dump_json().encode()))) for i, r in enumerate(later)]
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in arriving)  # they wait for the compaction instead of racing it
    store.finish.set()
    await asyncio.gather(training, *arriving)

    assert [letter.reason_class for letter in deadletters.letters] == ["not_trainable"]  # the request ran to its end
    assert (store.partition(TASK, first.hospital) / DATA_FILE).exists()
    hospitals = {r.hospital for r in (first, *later)}
    stored = {record_id for h in hospitals for record_id in store.frame(TASK, h)["_record_id"]}
    assert stored == {r.record_id for r in (first, *later)}


async def test_a_request_for_a_task_nobody_defined_is_dead_lettered_without_a_series_of_its_own(tmp_path: Path) -> None:
    _, requested, deadletters, train_metrics = handlers(ParquetTrainingStore(tmp_path))
    for n in range(3):
        await requested(
            raw(
                n, TrainRequest(task=f"made_up_{n}", site=f"ward-{n}").model_dump_json().encode(), "unit.train.requests"
            )
        )
    assert [letter.reason_class for letter in deadletters.letters] == ["unknown_task"] * 3
    assert "made_up_0" in deadletters.reasons[0]
    runs = [s.labels for m in train_metrics.runs.collect() for s in m.samples if s.name.endswith("_total")]
    assert [(r["task"], r["outcome"]) for r in runs] == [("?", "rejected")] * 3  # one series per site, bounded


async def test_a_long_inbox_is_compacted_as_records_arrive_and_only_its_ids_stay_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.train.adapters.store.COMPACT_AFTER_ROWS", 3)
    store = ParquetTrainingStore(tmp_path)
    store_clean, _, _, train_metrics = handlers(store)
    records = [r for r in heart_clean_records(8) if r.hospital == "cleveland"]
    for offset, record in enumerate(records + records[:2]):  # the last two are re-deliveries of compacted records
        await store_clean(raw(offset, record.model_dump_json().encode()))

    assert (store.partition(TASK, "cleveland") / DATA_FILE).exists()
    assert store.inbox_rows(TASK, "cleveland") < 3  # not every id ever stored
    store.compact(TASK)
    assert sorted(store.frame(TASK, "cleveland")["_record_id"]) == sorted(r.record_id for r in records)
    gauge = train_metrics.store_records.labels(TASK, "cleveland")._value.get()
    assert store.rows(TASK, "cleveland") == len(records) <= gauge <= len(records) + 2
