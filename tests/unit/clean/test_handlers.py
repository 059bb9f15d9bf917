"""The batch subscriber on in-memory ports: duplicates by id and by content (across batches and inside one), a
crash between claim and acknowledgement, dead letters, metrics counted once per successful batch."""

import json

import pytest
from aiokafka import ConsumerRecord

from services.clean.dedup import Candidate, Verdict, first_of_each_event, verdicts
from services.clean.handlers import CleanIngested
from services.clean.metrics import CleanMetrics
from shared.metrics import ServiceMetrics
from shared.schemas import CanonicalRecord
from shared.topics import derived_event_id
from tests.support.factories.clean import cleaner, heart_document, record_of
from tests.support.fakes import MemorySeenEvents, RecordingDeadLetters, RecordingPublisher, handled


def message(ce_id: str, message_id: str, offset: int = 0, **row: object) -> ConsumerRecord:
    record = record_of(heart_document(**row), "cleveland", message_id)
    return ConsumerRecord(
        "t.records.ingested",
        0,
        offset,
        0,
        0,
        None,
        record.model_dump_json().encode(),
        None,
        0,
        0,
        [("ce_id", ce_id.encode())],
    )


def make(fail: int = 0):
    metrics = ServiceMetrics("clean")
    seen, out, dead = MemorySeenEvents(), RecordingPublisher(failures=fail), RecordingDeadLetters()
    clean = CleanIngested(out, seen, cleaner(), CleanMetrics(metrics.registry))

    async def handler(records: list[ConsumerRecord]) -> None:
        await handled(clean, records, CanonicalRecord, deadletters=dead, metrics=metrics)

    return handler, seen, out, dead, metrics


def duplicates(metrics: ServiceMetrics, kind: str) -> float:
    return metrics.registry.get_sample_value("aimass_clean_duplicates_total", {"kind": kind}) or 0.0


def emitted(metrics: ServiceMetrics) -> float:
    return metrics.registry.get_sample_value("aimass_events_total", {"service": "clean", "outcome": "emitted"}) or 0


async def test_the_same_event_twice_and_the_same_content_under_a_new_id_give_one_output() -> None:
    handler, _, out, _, metrics = make()
    await handler([message("e-1", "m-1")])
    await handler([message("e-1", "m-1", offset=1)])
    await handler([message("e-2", "m-2", offset=2)])
    assert len(out.sent) == 1
    assert duplicates(metrics, "event_id") == 1 and duplicates(metrics, "content") == 1
    assert metrics.registry.get_sample_value("aimass_clean_records_total", {"hospital": "cleveland"}) == 1


async def test_inside_one_batch_the_first_of_an_event_or_a_content_wins() -> None:
    handler, seen, out, _, metrics = make()
    await handler(
        [
            message("e-1", "m-1"),
            message("e-1", "m-1", offset=1),
            message("e-2", "m-2", offset=2),
            message("e-3", "m-3", offset=3, chol=250.0),
        ]
    )
    assert [sent.event_id for sent in out.sent] == [
        derived_event_id("clean", "e-1"),
        derived_event_id("clean", "e-3"),
    ]
    assert duplicates(metrics, "event_id") == 1 and duplicates(metrics, "content") == 1
    assert seen.calls == 1 and seen.events == {"e-1", "e-3"}
    assert emitted(metrics) == 2


async def test_a_failed_acknowledgement_fails_the_batch_and_its_redelivery_emits_the_same_ids() -> None:
    handler, seen, out, _, metrics = make(fail=1)
    batch = [message("e-1", "m-1"), message("e-2", "m-2", offset=1, chol=250.0)]
    with pytest.raises(ConnectionError):
        await handler(batch)
    assert not seen.events  # nothing remembered: the batch is not committed and comes again
    assert emitted(metrics) == 0 and duplicates(metrics, "content") == 0
    await handler(batch)  # the same batch again: its content claims are its own
    assert [sent.event_id for sent in out.sent][-2:] == [
        derived_event_id("clean", "e-1"),
        derived_event_id("clean", "e-2"),
    ]
    assert seen.events == {"e-1", "e-2"} and emitted(metrics) == 2
    assert duplicates(metrics, "content") == 0


async def test_other_content_is_not_a_duplicate() -> None:
    handler, _, out, _, _ = make()
    await handler([message("e-1", "m-1"), message("e-2", "m-2", offset=1, chol=250.0)])
    assert len(out.sent) == 2


async def test_metrics_count_conversions_and_implausible_values() -> None:
    handler, _, _, _, metrics = make()
    await handler([message("e-1", "m-1", chol=0.0)])
    assert (
        metrics.registry.get_sample_value(
            "aimass_clean_implausible_total", {"hospital": "cleveland", "feature": "cholesterol"}
        )
        == 1
    )


async def test_a_value_that_is_not_a_record_is_dead_lettered_and_the_rest_of_the_batch_goes_on() -> None:
    handler, _, out, dead, _ = make()
    bad = ConsumerRecord("t.records.ingested", 0, 0, 0, 0, None, json.dumps({"x": 1}).encode(), None, 0, 0, [])
    await handler([bad, message("e-1", "m-1", offset=1)])
    assert len(out.sent) == 1 and "not a valid CanonicalRecord" in dead.reasons[0]


def test_repeats_of_an_event_id_are_judged_without_asking_redis() -> None:
    batch = [Candidate("a", "f1"), Candidate("b", "f2"), Candidate("a", "f3"), Candidate("c", "f1")]
    assert first_of_each_event(batch) == [0, 1, 3]
    judged = {0: Verdict.NEW, 1: Verdict.NEW, 3: Verdict.CONTENT}
    assert verdicts(batch, judged) == [Verdict.NEW, Verdict.NEW, Verdict.EVENT_ID, Verdict.CONTENT]
