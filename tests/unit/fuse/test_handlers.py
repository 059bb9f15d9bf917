"""The service layer on in-memory ports: any order, duplicates, deadlines, late arrivals, a lost emission, batches."""

import itertools

import pytest

from services.fuse.directory import ModelDirectory
from services.fuse.handlers import Fuser
from services.fuse.metrics import FuseMetrics
from services.fuse.ports import Arriving, JoinKey
from services.fuse.sweeper import DeadlineSweeper
from shared.errors import RejectedInput
from shared.metrics import ServiceMetrics
from shared.schemas.predictions import Prediction
from shared.tasks import load_tasks
from shared.topics import derived_event_id
from tests.support.factories.fuse import THREE_CARDS, expected_weights_for_cleveland, prediction
from tests.support.fakes import MemoryJoinStore, RecordingDeadLetters, RecordingPublisher, consumed, handled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(fail: int = 0):
    clock, store, out = Clock(), MemoryJoinStore(), RecordingPublisher(failures=fail)
    metrics = ServiceMetrics("fuse")
    fuser = Fuser(load_tasks(), ModelDirectory(THREE_CARDS), store, out, FuseMetrics(metrics), clock=clock)
    return fuser, store, out, clock, metrics


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


THREE = [prediction("hungary", 0.6), prediction("va-long-beach", 0.8), prediction("switzerland", 0.7)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_three_predictions_in_any_order_make_one_result(order) -> None:
    fuser, _, out, _, metrics = make()
    for i in order:
        await fuser.on_predictions([THREE[i]])
    [(result, event_id, key)] = out.sent
    assert event_id == derived_event_id("fuse", "rec-1", "heart_disease") and key == "p" * 32
    assert {c.model.site: c.weight for c in result.contributions} == pytest.approx(expected_weights_for_cleveland())
    assert not result.needs_review
    assert sample(metrics, "aimass_fuse_results_total", task="heart_disease", method="weighted_average") == 1


async def test_a_duplicate_changes_nothing_and_a_late_prediction_is_counted_not_refused() -> None:
    fuser, _, out, _, metrics = make()
    await fuser.on_predictions([THREE[0]])
    await fuser.on_predictions([prediction("hungary", 0.1)])  # the same site again, another probability
    await fuser.on_predictions([THREE[1]])
    await fuser.on_predictions([THREE[2]])
    await fuser.on_predictions([THREE[2]])  # a re-delivery after the result
    await fuser.on_predictions([prediction("pooled", 0.5)])  # a new model after the result
    [(result, _, _)] = out.sent
    hungary = next(c for c in result.contributions if c.model.site == "hungary")
    assert hungary.probability == 0.6
    assert sample(metrics, "aimass_events_total", service="fuse", outcome="duplicate") == 2
    assert sample(metrics, "aimass_fuse_late_predictions_total", task="heart_disease") == 1


async def test_the_deadline_fuses_what_arrived_and_names_the_missing_model() -> None:
    fuser, store, out, clock, metrics = make()
    sweeper = DeadlineSweeper(store, fuser)
    await fuser.on_predictions([THREE[0]])
    await fuser.on_predictions([THREE[1]])
    assert await sweeper.sweep_once() == 0 and out.sent == []
    clock.now += 2.0  # heart_disease's deadline
    assert await sweeper.sweep_once() == 1
    [(result, _, _)] = out.sent
    assert result.needs_review
    assert "no prediction from heart_disease/switzerland/v1 within 2 s" in result.review_reasons
    assert sample(metrics, "aimass_fuse_timeouts_total", task="heart_disease") == 1
    assert sample(metrics, "aimass_fuse_missing_models_total", task="heart_disease") == 1
    assert sample(metrics, "aimass_fuse_join_wait_seconds_sum") == pytest.approx(2.0)
    await fuser.on_predictions([THREE[2]])
    assert len(out.sent) == 1
    assert sample(metrics, "aimass_fuse_late_predictions_total", task="heart_disease") == 1


async def test_a_failed_publish_gives_its_claim_back_so_the_redelivery_emits_at_once() -> None:
    fuser, store, out, _, _ = make(fail=1)
    await fuser.on_predictions([THREE[0], THREE[1]])
    with pytest.raises(ConnectionError):
        await fuser.on_predictions([THREE[2]])
    # The broker re-delivers the batch: a duplicate, but the join is complete and no longer claimed. Had the claim
    # been kept, this batch would be committed with the join only in Redis until the lease ran out.
    await fuser.on_predictions([THREE[2]])
    [(result, event_id, _)] = out.sent
    assert len(result.contributions) == 3 and event_id == derived_event_id("fuse", "rec-1", "heart_disease")
    assert await store.due(now=1e9, limit=10) == []


async def test_a_claim_left_by_a_dead_replica_is_emitted_after_its_lease_with_the_same_event_id() -> None:
    fuser, store, out, clock, _ = make()
    await fuser.on_predictions([THREE[0], THREE[1]])
    key = JoinKey("heart_disease", "rec-1")
    await store.add_many([Arriving(key, "switzerland", THREE[2].model_dump_json(), clock.now + 2)], now=clock.now)
    assert key in await store.claim_many([key], now=clock.now)  # ... and that replica is killed before publishing
    await fuser.on_predictions([THREE[2]])  # re-delivered here: a duplicate, and the claim is still leased
    sweeper = DeadlineSweeper(store, fuser)
    assert await sweeper.sweep_once() == 0 and out.sent == []
    clock.now += store.lease_seconds
    assert await sweeper.sweep_once() == 1
    [(result, event_id, _)] = out.sent
    assert len(result.contributions) == 3 and event_id == derived_event_id("fuse", "rec-1", "heart_disease")
    assert await store.due(now=clock.now + 100, limit=10) == []
    assert await store.claim_many([key], now=clock.now + 100) == {}


async def test_a_prediction_for_a_task_without_a_task_file_is_rejected_with_a_reason() -> None:
    fuser, *_ = make()
    with pytest.raises(RejectedInput, match="no task file") as rejected:
        await fuser.on_predictions([prediction("hungary", 0.5, task="unheard_of")])
    assert rejected.value.reason_class == "unknown_task"


async def test_a_batch_takes_one_round_trip_per_step_whatever_it_holds() -> None:
    fuser, store, out, _, metrics = make()
    records = [f"rec-{n}" for n in range(50)]
    batch = [
        prediction(site, 0.1 + n / 100, record_id=r)
        for n, r in enumerate(records)
        for site in ("hungary", "va-long-beach", "switzerland")
    ]
    batch.insert(1, prediction("hungary", 0.9, record_id="rec-0"))  # a repeat inside the batch
    await fuser.on_predictions(batch)
    assert store.calls == 3  # add, claim, emitted: for 50 joins and 151 predictions
    assert sorted(r.record_id for r, _, _ in out.sent) == sorted(records)
    first = next(r for r, _, _ in out.sent if r.record_id == "rec-0")
    assert next(c.probability for c in first.contributions if c.model.site == "hungary") == 0.1
    assert sample(metrics, "aimass_events_total", service="fuse", outcome="duplicate") == 1
    assert sample(metrics, "aimass_fuse_results_total", task="heart_disease", method="weighted_average") == 50


async def test_a_batch_with_joins_incomplete_publishes_only_the_complete_ones() -> None:
    fuser, _, out, _, _ = make()
    await fuser.on_predictions([THREE[0], prediction("hungary", 0.4, record_id="rec-2"), THREE[1], THREE[2]])
    assert [r.record_id for r, _, _ in out.sent] == ["rec-1"]


async def test_a_batch_dead_letters_what_is_not_a_prediction_of_a_known_task_and_fuses_the_rest() -> None:
    fuser, _, out, _, metrics = make()
    deadletters = RecordingDeadLetters()
    values = [
        THREE[0].model_dump_json().encode(),
        b"{not json",
        THREE[1].model_dump_json().encode(),
        prediction("hungary", 0.5, task="unheard_of").model_dump_json().encode(),
        THREE[2].model_dump_json().encode(),
    ]
    records = [consumed("t.predictions", v, offset=n, key=b"k") for n, v in enumerate(values)]
    await handled(fuser, records, Prediction, check=fuser.check, deadletters=deadletters, metrics=metrics)
    assert [letter.offset for letter in deadletters.letters] == [1, 3]
    assert deadletters.letters[1].reason_class == "unknown_task"
    assert len(deadletters.acks.acknowledged) == 2
    [(result, _, _)] = out.sent
    assert len(result.contributions) == 3
    assert sample(metrics, "aimass_events_total", service="fuse", outcome="received") == 3
