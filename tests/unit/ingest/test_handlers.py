"""ingest's batch handler called directly: fakes for the publishers that hand out unresolved acknowledgements, so
the tests see what is enqueued before the one wait of a batch."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from functools import partial

import pandas as pd
import pytest
from aiokafka import ConsumerRecord

from services.ingest.adapters.claim_check_files import FileClaimChecks
from services.ingest.csv_xlsx import XLSX_CONTENT_TYPE
from services.ingest.documents import Ingested, ReadOptions, read_document
from services.ingest.handlers import IngestRaw, raw_document
from services.ingest.metrics import IngestMetrics
from services.ingest.records import Envelope
from shared.metrics import ServiceMetrics
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE
from tests.support.factories.ingest import TABLES, fixture, pseudonymize
from tests.support.fakes import Acknowledgements, RecordingDeadLetters, RecordingPublisher, handled


async def enqueued(acks: Acknowledgements, count: int, running: asyncio.Task[None]) -> None:
    """Until ``count`` outputs were enqueued (or the handler ended): no fixed sleep on a busy machine."""
    async with asyncio.timeout(30):
        while len(acks.sent) < count and not running.done():
            acks.grown.clear()
            grown = asyncio.ensure_future(acks.grown.wait())
            await asyncio.wait([running, grown], return_when=asyncio.FIRST_COMPLETED)
            grown.cancel()
    await asyncio.sleep(0.05)  # time to enqueue more than expected or to return early, if it would


def handler(tmp_path, read=None, at_once: bool = False):
    acks = Acknowledgements(held=not at_once)
    metrics = ServiceMetrics("ingest")
    options = ReadOptions(tables=TABLES, data_root=tmp_path, claim_check_bytes=16_384)
    read = read or partial(read_document, pseudonymize=pseudonymize, max_bytes=2_000_000, options=options)
    ingest = IngestRaw(
        RecordingPublisher(acks, "record"),
        RecordingPublisher(acks, "audit"),
        FileClaimChecks(tmp_path),
        read,
        IngestMetrics(metrics.registry),
        "unit.",
    )

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        await handled(ingest, records, raw_document, deadletters=RecordingDeadLetters(acks), metrics=metrics)

    return handle, acks, metrics


def sent_json(acks: Acknowledgements, kind: str) -> list[dict]:
    return [json.loads(sent.event.model_dump_json()) for sent in acks.of(kind)]


def raw(offset: int, body: bytes, hospital: str, content_type: str | None, partition: int = 0) -> ConsumerRecord:
    headers = [(CE_SOURCE, hospital.encode()), (CE_ID, f"m-{offset}".encode())]
    if content_type:
        headers.append((CONTENT_TYPE, content_type.encode()))
    return ConsumerRecord("unit.ingest.raw", partition, offset, 0, 0, None, body, None, 0, len(body), headers)


def json_document(patient: str, age: int) -> bytes:
    return json.dumps({"patient_id": patient, "age_years": age, "sex": "female"}).encode()


MIXED = (
    raw(0, json_document("CH-1", 41), "switzerland", "application/json"),
    raw(1, b"garbage {{{", "switzerland", "application/json"),
    raw(2, fixture("va-long-beach-with-a-bad-row.csv"), "va-long-beach", "text/csv", partition=1),
    raw(3, b"", "hungary", None, partition=2),
    raw(4, json_document("CH-2", 52), "switzerland", "application/json", partition=2),
)


async def test_a_mixed_batch_yields_the_good_records_and_a_dead_letter_per_bad_document(tmp_path) -> None:
    handle, acks, metrics = handler(tmp_path)
    running = asyncio.create_task(handle(MIXED))
    await enqueued(acks, 12, running)
    # everything of the batch is enqueued, and the handler waits for the acknowledgements before returning
    assert len(acks.sent) == 4 + 3 + 5 and not running.done()
    acks.acknowledge_all()
    await asyncio.wait_for(running, 1)

    assert sorted(r["demographics"]["age_years"] for r in sent_json(acks, "record")) == [41, 52, 65, 90]
    reasons = {dict(d.record.headers)[CE_ID].decode(): d.reason for d in acks.of("dead")}
    assert reasons["m-1"].startswith("JSON: Expecting value") and reasons["m-3"] == "empty document"
    assert reasons["m-2#row-2"] == "CSV row 2 column 'resting_bp_mmhg': not a number"
    outcomes = [(a["message_id"], a["outcome"]) for a in sent_json(acks, "audit")]
    assert outcomes == [
        ("m-0", "ingested"),
        ("m-1", "rejected"),
        ("m-2", "partially_ingested"),
        ("m-3", "rejected"),
        ("m-4", "ingested"),
    ]
    assert metrics.registry.get_sample_value("aimass_events_total", {"service": "ingest", "outcome": "emitted"}) == 4
    timed = {
        f: metrics.registry.get_sample_value("aimass_ingest_parse_seconds_count", {"format": f})
        for f in ("json", "csv", "unknown")
    }
    assert timed == {"json": 3, "csv": 1, "unknown": 1}  # one timing per document, rejected ones included


async def test_the_batch_is_not_done_until_every_acknowledgement_came(tmp_path) -> None:
    handle, acks, _ = handler(tmp_path)
    running = asyncio.create_task(handle(MIXED[:1] + MIXED[4:]))
    await enqueued(acks, 4, running)
    assert not running.done()
    acks.futures[0].set_exception(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):  # raised: FastStream nacks the batch and it is delivered again
        await asyncio.wait_for(running, 1)
    acks.acknowledge_all()


async def test_an_unexpected_failure_in_one_document_fails_the_whole_batch(tmp_path) -> None:
    def read(document: bytes, headers: Mapping[str, str], envelope: Envelope) -> Ingested:
        if envelope.message_id == "m-4":
            raise OSError("disk full")
        return read_document(
            document, headers, envelope, pseudonymize, 2_000_000, ReadOptions(tables=TABLES, data_root=tmp_path)
        )

    handle, acks, metrics = handler(tmp_path, read)
    with pytest.raises(OSError):
        await handle(MIXED)
    acks.acknowledge_all()
    assert (
        metrics.registry.get_sample_value("aimass_events_total", {"service": "ingest", "outcome": "emitted"}) is None
    )  # nothing counted as done: the whole batch comes again


async def test_a_large_or_compressed_document_is_read_in_a_worker_thread(tmp_path) -> None:
    from services.cli.scenario import formats
    from services.cli.scenario.heart import records_by_hospital

    threads: list[str] = []

    def read(document: bytes, headers: Mapping[str, str], envelope: Envelope) -> Ingested:
        import threading

        threads.append(threading.current_thread().name)
        return read_document(
            document, headers, envelope, pseudonymize, 2_000_000, ReadOptions(tables=TABLES, data_root=tmp_path)
        )

    rows = records_by_hospital()["va-long-beach"]
    large = formats.csv_rows(rows * 3).encode()
    assert len(large) > 64 * 1024
    workbook = io.BytesIO()
    pd.read_csv(io.StringIO(formats.csv_rows(rows[:5]))).to_excel(workbook, index=False, engine="openpyxl")
    assert len(workbook.getvalue()) < 64 * 1024
    handle, acks, _ = handler(tmp_path, read, at_once=True)
    await handle(
        (
            raw(0, large, "va-long-beach", "text/csv"),
            MIXED[0],
            raw(2, workbook.getvalue(), "va-long-beach", XLSX_CONTENT_TYPE),
        )
    )
    assert len(sent_json(acks, "record")) == 601 + 5
    assert threads[0] != "MainThread" and threads[1] == "MainThread" and threads[2] != "MainThread"


async def test_a_hospital_s_own_topic_binds_ce_source_to_the_sender(tmp_path) -> None:
    """Only hungary's principal may write unit.ingest.raw.hungary: what arrives there is hungary's, whatever it says."""
    handle, acks, _ = handler(tmp_path, at_once=True)
    own = dataclasses.replace(
        raw(0, json_document("H-1", 60), "hungary", "application/json"), topic="unit.ingest.raw.hungary"
    )
    posing = dataclasses.replace(
        raw(1, json_document("H-2", 61), "cleveland", "application/json"), topic="unit.ingest.raw.hungary"
    )
    unnamed = dataclasses.replace(
        raw(2, json_document("H-3", 62), "hungary", "application/json"),
        topic="unit.ingest.raw.hungary",
        headers=[(CONTENT_TYPE, b"application/json")],
    )
    shared_topic = raw(3, json_document("C-1", 63), "cleveland", "application/json")  # the platform's own principals
    await handle([own, posing, unnamed, shared_topic])
    assert [r["hospital"] for r in sent_json(acks, "record")] == ["hungary", "hungary", "cleveland"]
    [dead] = acks.of("dead")
    assert dead.reason_class == "wrong_source" and dead.record.offset == 1 and "ingest.raw" in dead.record.topic
    assert "another hospital than the input topic of hungary" in dead.reason
    rejected = next(a for a in sent_json(acks, "audit") if a["outcome"] == "rejected")
    assert rejected["hospital"] == "hungary"  # the audit names who sent it, not whom it claimed to be
