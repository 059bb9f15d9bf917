"""The one intake: typed events in, unreadable records dead-lettered with a reason, outputs confirmed together, counts
added only once a batch is confirmed; and a new subscriber written here needs no parsing or dead-letter code."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel, Field

from shared.broker import raw_body
from shared.errors import RejectedInput
from shared.intake import Batch
from shared.metrics import ServiceMetrics
from shared.schemas.audit import AuditEvent
from shared.service import Service
from shared.settings import Settings
from shared.topics import CE_ID, DLQ_ERROR, DLQ_SERVICE, Topic
from tests.support.fakes import Acknowledgements, RecordingDeadLetters, RecordingPublisher, consumed, intake


class Reading(BaseModel):
    sensor: str
    value: float = Field(ge=0)


def events(metrics: ServiceMetrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("aimass_events_total", {"service": "unit", "outcome": outcome}) or 0.0


def value(**fields: object) -> bytes:
    return json.dumps(fields).encode()


async def test_what_cannot_be_read_is_dead_lettered_with_its_reason_and_the_rest_is_typed() -> None:
    deadletters = RecordingDeadLetters()
    records = [
        consumed("t.readings", value(sensor="a", value=1.5), offset=0, headers=[(CE_ID, b"e-0")]),
        consumed("t.readings", b"{not json", offset=1),
        consumed("t.readings", value(sensor="b", value=-1), offset=2),
        consumed("t.readings", value(sensor="c", value=2.0), offset=3),
    ]
    batch = await intake(deadletters).accept_batch(records, Reading)
    assert batch.events == [Reading(sensor="a", value=1.5), Reading(sensor="c", value=2.0)]
    assert [item.event_id for item in batch] == ["e-0", "t.readings/0/3"]  # ce_id, else the record's position
    assert [(letter.offset, letter.reason_class) for letter in deadletters.letters] == [(1, "malformed"), (2, "schema")]
    assert (
        deadletters.reasons[1]
        == "t.readings value is not a valid Reading: value: Input should be greater than or equal to 0"
    )


async def test_a_check_rejects_what_the_schema_lets_through_and_a_reader_can_be_a_function() -> None:
    def known_sensor(reading: Reading) -> None:
        if reading.sensor != "a":
            raise RejectedInput(f"no sensor {reading.sensor!r} is installed", "unknown_sensor")

    deadletters = RecordingDeadLetters()
    records = [consumed("t.readings", value(sensor=s, value=1.0), offset=n) for n, s in enumerate("ab")]
    checked = await intake(deadletters).accept_batch(records, Reading, check=known_sensor)
    assert [r.sensor for r in checked.events] == ["a"] and deadletters.letters[0].reason_class == "unknown_sensor"

    lengths = await intake().accept_batch(records, lambda record: len(record.value or b""))
    assert lengths.events == [len(records[0].value), len(records[1].value)]


async def test_counts_are_added_once_the_batch_is_confirmed_and_not_when_an_acknowledgement_fails() -> None:
    metrics = ServiceMetrics("unit")
    acks = Acknowledgements(held=True)
    out = RecordingPublisher(acks)
    batch = await intake(RecordingDeadLetters(acks), metrics).accept_batch(
        [consumed("t.readings", value(sensor="a", value=1.0)), consumed("t.readings", b"")], Reading
    )
    await batch.send(out, batch.events[0], event_id="out-1", key="a")
    batch.count("emitted")
    confirming = asyncio.create_task(batch.confirm())
    await asyncio.sleep(0.01)
    assert not confirming.done() and events(metrics, "received") == 0  # waits for the sends and the dead letter
    acks.futures[0].set_exception(ConnectionError("broker gone"))
    acks.acknowledge_all()
    with pytest.raises(ConnectionError):
        await confirming
    assert events(metrics, "emitted") == 0 and events(metrics, "received") == 0  # the batch comes again: not counted

    again = await intake(RecordingDeadLetters(), metrics).accept_batch(
        [consumed("t.readings", value(sensor="a", value=1))], Reading
    )
    again.count("emitted")
    await again.confirm()
    await again.confirm()  # a second confirm waits for nothing and counts nothing twice
    assert events(metrics, "emitted") == 1 and events(metrics, "received") == 1


async def test_a_new_subscriber_needs_no_parsing_or_dead_letter_code_of_its_own(tmp_path: Path) -> None:
    """An audit reader as a team would add one: a schema, a handler of typed events, one ``consume`` call."""
    service = Service("report", Settings(var_dir=tmp_path, topic_prefix="unit."))
    read: list[AuditEvent] = []

    async def remember(batch: Batch[AuditEvent]) -> None:
        read.extend(batch.events)

    service.consume(Topic.AUDIT, read=AuditEvent, handle=remember, description="Audit events, read back.")
    dead: list[tuple[bytes, dict[str, str]]] = []

    @service.broker.subscriber("unit.deadletter", decoder=raw_body)
    async def collect(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers))

    good = {
        "audit_id": "a-1",
        "service": "ingest",
        "outcome": "ingested",
        "hospital": "cleveland",
        "message_id": "m-1",
        "bytes": 10,
        "received_at": "2026-12-02T10:00:00Z",
    }
    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(json.dumps(good).encode(), "unit.audit")
        await broker.publish(b'{"audit_id": "a-2"}', "unit.audit")
    assert [event.audit_id for event in read] == ["a-1"]
    [(body, headers)] = dead
    assert body == b'{"audit_id": "a-2"}' and headers[DLQ_SERVICE] == "report"
    assert headers[DLQ_ERROR].startswith("unit.audit value is not a valid AuditEvent: service: Field required")
