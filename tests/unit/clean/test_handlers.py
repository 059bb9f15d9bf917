"""The subscriber on in-memory ports: duplicates by id and by content, a crash between claim and publish."""

import json

import pytest
from aiokafka import ConsumerRecord

from services.clean.handlers import CleanIngested
from services.clean.metrics import CleanMetrics
from shared.metrics import ServiceMetrics
from shared.schemas import CleanRecord
from tests.unit.clean.factories import cleaner, heart_document, record_of


class MemorySeen:
    def __init__(self) -> None:
        self.events: set[str] = set()
        self.contents: dict[str, str] = {}

    async def seen(self, event_id: str) -> bool:
        return event_id in self.events

    async def remember(self, event_id: str) -> None:
        self.events.add(event_id)

    async def claim_content(self, fingerprint: str, event_id: str) -> bool:
        return self.contents.setdefault(fingerprint, event_id) == event_id


class Publisher:
    def __init__(self, fail: int = 0) -> None:
        self.published: list[tuple[CleanRecord, str]] = []
        self.fail = fail

    async def publish(self, event: CleanRecord, *, event_id: str, key: str | None) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.published.append((event, event_id))


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, record: ConsumerRecord, reason: str, reason_class: str) -> None:
        self.sent.append(reason)


def message(ce_id: str, message_id: str, offset: int = 0, **row: object) -> ConsumerRecord:
    record = record_of(heart_document(**row), "cleveland", message_id)
    return ConsumerRecord("t.records.ingested", 0, offset, 0, 0, None, record.model_dump_json().encode(), None, 0, 0,
                          [("ce_id", ce_id.encode())])


def make(fail: int = 0):
    metrics = ServiceMetrics("clean")
    seen, out, dead = MemorySeen(), Publisher(fail), DeadLetters()
    handler = CleanIngested(out, dead, seen, cleaner(), metrics, CleanMetrics(metrics.registry))
    return handler, seen, out, dead, metrics


def duplicates(metrics: ServiceMetrics, kind: str) -> float:
    return metrics.registry.get_sample_value("aimass_clean_duplicates_total", {"kind": kind}) or 0.0


async def test_the_same_event_twice_and_the_same_content_under_a_new_id_give_one_output() -> None:
    handler, _, out, _, metrics = make()
    await handler(message("e-1", "m-1"))
    await handler(message("e-1", "m-1", offset=1))
    await handler(message("e-2", "m-2", offset=2))
    assert len(out.published) == 1
    assert duplicates(metrics, "event_id") == 1 and duplicates(metrics, "content") == 1
    assert metrics.registry.get_sample_value("aimass_clean_records_total", {"hospital": "cleveland"}) == 1


async def test_a_crash_between_claim_and_publish_still_emits_on_redelivery() -> None:
    handler, _, out, _, _ = make(fail=1)
    with pytest.raises(ConnectionError):
        await handler(message("e-1", "m-1"))
    await handler(message("e-1", "m-1"))
    [(record, _)] = out.published
    assert record.hospital == "cleveland"


async def test_other_content_is_not_a_duplicate() -> None:
    handler, _, out, _, _ = make()
    await handler(message("e-1", "m-1"))
    await handler(message("e-2", "m-2", chol=250.0))
    assert len(out.published) == 2


async def test_metrics_count_conversions_and_implausible_values() -> None:
    handler, _, _, _, metrics = make()
    await handler(message("e-1", "m-1", chol=0.0))
    assert metrics.registry.get_sample_value("aimass_clean_implausible_total",
                                             {"hospital": "cleveland", "feature": "cholesterol"}) == 1


async def test_a_value_that_is_not_a_record_is_dead_lettered() -> None:
    handler, _, out, dead, _ = make()
    bad = ConsumerRecord("t.records.ingested", 0, 0, 0, 0, None, json.dumps({"x": 1}).encode(), None, 0, 0, [])
    await handler(bad)
    assert not out.published and "not a valid CanonicalRecord" in dead.sent[0]
