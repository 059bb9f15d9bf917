"""ingest's front doors on the real broker, with ingest and clean as processes: HL7 v2 over MLLP with python-hl7's
own client (AA, AA, AE; enhanced mode; a re-sent control id; kill -9 between write and ACK) and the FHIR REST intake
with real tokens (Cleveland's Bundle to records.clean, OperationOutcomes, NDJSON). Records are counted on
records.clean: one per control id, whatever was re-sent or re-delivered."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hl7
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hl7.mllp import open_hl7_connection

from services.cli.scenario import formats
from services.cli.scenario.heart import records_by_hospital
from shared.broker import ensure_topics
from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import (
    CE_ID,
    CE_SOURCE,
    CONTENT_TYPE,
    DLQ_ERROR,
    DLQ_ORIGINAL_TOPIC,
    Topic,
    decode_headers,
    derived_event_id,
    group_id,
    topic_name,
)
from tests.support.factories.ingest import read
from tests.support.identity import local_identity
from tests.support.kafka import TopicReader, read_all
from tests.support.processes import ServiceProcess, free_port, log_tails
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration
HL7 = "x-application/hl7-v2+er7"
FHIR = "application/fhir+json"
RUN = uuid.uuid4().hex[:8]  # control ids of this run: the broker and Redis outlive it
ROWS = records_by_hospital(110, spread=True)
# MSH-4 claims Cleveland: the record must still be Hungary's, the hospital whose port the message came in on.
ADT = (
    "MSH|^~\\&|ADT|cleveland|AIMASS|AIMASS|20261101080000||ADT^A01^ADT_A01|{id}|P|2.5\r"
    "EVN|A01|20261101080000\r"
    "PID|1||OKI-{id}^^^HUNGARY^MR||Lendvay^Gedeon||19310215|M\r"
    "PV1|1|I|KARD^3^2||||||||||||||||V-{id}\r"
)


def oru(row: int, control_id: str, accept: str = "", application: str = "") -> bytes:
    """The real UCI row ``row`` of Hungary as its HL7 v2.5 ORU^R01, with the control id (and MSH-15/16) given."""
    segments = formats.hl7_oru(ROWS["hungary"][row]).split("\r")
    msh = segments[0].split("|")
    msh += [""] * (16 - len(msh))
    msh[9], msh[14], msh[15] = control_id, accept, application
    segments[0] = "|".join(msh).rstrip("|")
    return "\r".join(segments).encode()


def record_id(hospital: str, event_id: str, key: str = "message-0/patient-0") -> str:
    """What ingest names the record of an event (services.ingest.records.to_canonical)."""
    return derived_event_id("ingest", f"{hospital}/{event_id}", key)


@pytest.fixture(scope="module")
def door_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    own = settings_for(tmp_path_factory.mktemp("doors-var"), f"it-doors-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture(scope="module")
def mllp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def stack(door_settings: Settings, mllp_port: int) -> Iterator[dict[str, ServiceProcess]]:
    ports = json.dumps({"hungary": mllp_port})
    processes = {
        "ingest": ServiceProcess("ingest", door_settings, AIMASS_INGEST_MLLP_PORTS=ports).start(),
        "clean": ServiceProcess("clean", door_settings).start(),
    }
    try:
        for process in processes.values():
            process.wait_ready(120)
        yield processes
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture
async def clean_records(door_settings: Settings) -> Any:
    reader = await TopicReader(door_settings, Topic.RECORDS_CLEAN).open()
    yield reader
    await reader.close()


async def connect(port: int, timeout: float = 120.0) -> tuple[Any, Any]:
    """python-hl7's client, once the listener answers (it opens after ingest's broker connection)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await open_hl7_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def exchange(port: int, *messages: bytes, acks_each: int = 1) -> list[hl7.Message]:
    reader, writer = await connect(port)
    try:
        answers = []
        for message in messages:
            writer.writemessage(hl7.parse(message.decode()))
            await writer.drain()
            answers += [await asyncio.wait_for(reader.readmessage(), 30) for _ in range(acks_each)]
        return answers
    finally:
        writer.close()
        await writer.wait_closed()


def msa(ack: hl7.Message) -> tuple[str, str]:
    return str(ack.segment("MSA")(1)), str(ack.segment("MSA")(2))


async def caught_up(settings: Settings, service: str, topic: Topic, timeout: float = 180.0) -> None:
    """Until ``service``'s consumer group has committed everything on ``topic``: all it was sent, it handled."""
    name = topic_name(topic, settings.topic_prefix)
    partitions = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings), group_id=group_id(service, settings.topic_prefix), enable_auto_commit=False
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            ends = await consumer.end_offsets(partitions)
            committed = {p: (await consumer.committed(p)) or 0 for p in partitions}
            if all(committed[p] >= ends[p] for p in partitions):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} has not caught up on {name}: {committed} of {ends}")
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


async def clean_counts(settings: Settings) -> Counter[str]:
    """Every record on records.clean, by record id, once ingest and clean handled all they were sent."""
    await caught_up(settings, "ingest", Topic.INGEST_RAW)
    await caught_up(settings, "clean", Topic.RECORDS_INGESTED)
    return Counter(json.loads(r.value)["record_id"] for r in await read_all(settings, Topic.RECORDS_CLEAN))


# -- MLLP ----------------------------------------------------------------------------------------------------------
async def test_adt_oru_and_a_malformed_message_get_aa_aa_ae(door_settings, stack, mllp_port, clean_records) -> None:
    ids = [f"{RUN}-adt", f"{RUN}-oru", f"{RUN}-bad"]
    malformed = f"MSH|^~\\&|LAB|HUNGARY|AIMASS|AIMASS|20261101||ORU^R01|{ids[2]}|P|2.5\rOBR|1||X|2093-3^Chol^LN\r"
    dead = await TopicReader(door_settings, Topic.DEADLETTER).open()
    try:
        answers = await exchange(mllp_port, ADT.format(id=ids[0]).encode(), oru(0, ids[1]), malformed.encode())
        assert [msa(a) for a in answers] == [("AA", ids[0]), ("AA", ids[1]), ("AE", ids[2])]
        error = answers[2].segment("ERR")
        assert str(error(3)).startswith("100^") and "comes before any PID" in str(error(8))

        wanted = {record_id("hungary", f"mllp/{i}") for i in ids[:2]}
        found = await clean_records.wait_for(lambda r: json.loads(r.value)["record_id"] in wanted, 2, 120)
        assert {json.loads(r.value)["hospital"] for r in found} == {"hungary"}  # the port's hospital

        [letter] = await dead.wait_for(lambda r: decode_headers(r.headers).get(CE_ID) == f"mllp/{ids[2]}", 1, 30)
        headers = decode_headers(letter.headers)
        assert letter.value == malformed.encode()  # nothing lost: the bytes as they came, replayable
        assert headers[CE_SOURCE] == "hungary" and headers[CONTENT_TYPE] == HL7
        assert "comes before any PID" in headers[DLQ_ERROR]
        assert headers[DLQ_ORIGINAL_TOPIC] == topic_name(Topic.INGEST_RAW, door_settings.topic_prefix)
    finally:
        await dead.close()


async def test_a_resent_control_id_is_one_record_and_enhanced_mode_commits_first(
    door_settings, stack, mllp_port
) -> None:
    control = f"{RUN}-resent"
    first, again = await exchange(mllp_port, oru(1, control), oru(1, control))
    assert msa(first) == msa(again) == ("AA", control)
    commit, application = await exchange(mllp_port, oru(2, f"{RUN}-enhanced", "AL", "AL"), acks_each=2)
    assert msa(commit) == ("CA", f"{RUN}-enhanced") and msa(application) == ("AA", f"{RUN}-enhanced")
    [only_commit] = await exchange(mllp_port, oru(3, f"{RUN}-commit-only", "AL", "NE"))
    assert msa(only_commit)[0] == "CA"

    counts = await clean_counts(door_settings)
    written = Counter(decode_headers(r.headers)[CE_ID] for r in await read_all(door_settings, Topic.INGEST_RAW))
    assert written[f"mllp/{control}"] == 2  # the listener keeps no memory of ids: both copies go to ingest.raw ...
    assert counts[record_id("hungary", f"mllp/{control}")] == 1  # ... and clean absorbs the second
    assert counts[record_id("hungary", f"mllp/{RUN}-enhanced")] == 1
    metrics = stack["ingest"].get("/metrics").text
    assert 'aimass_ingest_mllp_messages_total{ack="CA",hospital="hungary"} 2.0' in metrics
    ready = stack["ingest"].get("/readyz").json()
    assert ready["mllp_ports"] == {"hungary": mllp_port}


# -- FHIR REST -----------------------------------------------------------------------------------------------------
async def test_a_posted_bundle_becomes_a_clean_record_and_a_bad_one_an_operation_outcome(
    door_settings, stack, clean_records
) -> None:
    url = stack["ingest"].url
    cleveland = {**local_identity().headers("cleveland"), "content-type": FHIR}
    body = json.dumps(formats.fhir_bundle(ROWS["cleveland"][0])).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"{url}/fhir", content=body, headers=cleveland)
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["id"]
        expected = read(body, "cleveland", FHIR, message_id=event_id).records[0].record_id
        [record] = await clean_records.wait_for(lambda r: json.loads(r.value)["record_id"] == expected, 1, 120)
        assert json.loads(record.value)["hospital"] == "cleveland"

        bad = json.loads(body)
        bad["type"] = "transaction"
        entry = next(n for n, e in enumerate(bad["entry"]) if "valueQuantity" in e["resource"])
        bad["entry"][entry]["resource"]["valueQuantity"]["value"] = "high"
        refused = await client.post(f"{url}/fhir", json=bad, headers=cleveland)
        assert refused.status_code == 422
        [issue] = OperationOutcome.model_validate(refused.json()).issue
        assert issue.expression == [f"Bundle.entry[{entry}].resource.valueQuantity.value"]

        operator = {**local_identity().headers(), "content-type": FHIR}  # a token of no hospital
        forbidden = await client.post(f"{url}/fhir", content=body, headers=operator)
        assert forbidden.status_code == 403
        assert OperationOutcome.model_validate(forbidden.json()).issue[0].code == "forbidden"

        lines = [json.dumps(formats.fhir_bundle(ROWS["cleveland"][n])).encode() for n in (1, 2)]
        upload = b"\n".join([lines[0], b'{"resourceType": "Observation", "status": "final"}', lines[1]]) + b"\n"
        ndjson = {**cleveland, "content-type": "application/fhir+ndjson"}
        imported = await client.post(f"{url}/fhir/$import", content=upload, headers=ndjson)
    assert imported.status_code == 202, imported.text
    result = imported.json()
    assert (result["documents"], result["lines_refused"]) == (2, 1)
    [line] = OperationOutcome.model_validate(result["outcome"]).issue
    assert line.diagnostics.startswith("line 2: ") and line.expression == ["Observation.code"]
    counts = await clean_counts(door_settings)
    assert counts[expected] == 1
    for event, text in zip(result["ids"], lines, strict=True):
        assert counts[read(text, "cleveland", FHIR, message_id=event).records[0].record_id] == 1


# -- kill -9 between write and ACK (last: it restarts ingest) ------------------------------------------------------
async def test_killing_ingest_between_write_and_ack_loses_nothing_and_duplicates_nothing(
    door_settings, stack, mllp_port
) -> None:
    """An interface engine's behaviour: every message without an ACK is sent again once the port answers again.
    The messages are pipelined (all written at once, the listener takes them in order), so at the kill some are on
    ingest.raw without their ACK: their re-sent copies must be absorbed."""
    count = 100
    messages = {f"{RUN}-kill-{n}": oru(4 + n, f"{RUN}-kill-{n}") for n in range(count)}
    acked: dict[str, str] = {}
    ingest = stack["ingest"]

    raw = await TopicReader(door_settings, Topic.INGEST_RAW).open()
    reader, writer = await connect(mllp_port)
    for message in messages.values():
        writer.writemessage(hl7.parse(message.decode()))
    await writer.drain()
    try:
        while len(acked) < 10:
            ack = await asyncio.wait_for(reader.readmessage(), 30)
            acked[msa(ack)[1]] = msa(ack)[0]
        # Mid-stream: 30 messages on ingest.raw, 10 ACKs read. The kill comes while the listener is writing and
        # answering; the ACKs it wrote after the tenth are not read (the engine's connection broke before it read
        # them), so at least 20 messages are on ingest.raw without an ACK, and come again.
        wanted = {f"mllp/{cid}" for cid in messages}
        await raw.wait_for(lambda r: decode_headers(r.headers).get(CE_ID) in wanted, 30, 60)
        await asyncio.to_thread(ingest.kill)
    finally:
        writer.close()
        await raw.close()
    written_before = Counter(decode_headers(r.headers)[CE_ID] for r in raw.records)
    assert len(acked) == 10 and sum(written_before[f"mllp/{cid}"] for cid in messages) < count, "the kill came late"

    ingest.start()
    missing = [cid for cid in messages if cid not in acked]
    reader, writer = await connect(mllp_port)
    try:
        for cid in missing:
            writer.writemessage(hl7.parse(messages[cid].decode()))
        await writer.drain()
        for _ in missing:
            ack = await asyncio.wait_for(reader.readmessage(), 120)
            acked[msa(ack)[1]] = msa(ack)[0]
    finally:
        writer.close()
    assert acked == dict.fromkeys(messages, "AA")

    counts = await clean_counts(door_settings)
    per_message = {cid: counts[record_id("hungary", f"mllp/{cid}")] for cid in messages}
    assert per_message == dict.fromkeys(messages, 1), log_tails(stack.values())
    on_raw = [decode_headers(r.headers)[CE_ID] for r in await read_all(door_settings, Topic.INGEST_RAW)]
    written = Counter(on_raw)
    twice = [cid for cid in messages if written[f"mllp/{cid}"] > 1]
    assert len(twice) >= 20  # written, not acknowledged, sent again: absorbed downstream (one record each above)
    # One partition (the key is the hospital), so ingest.raw shows the order the listener wrote in: each message
    # first appears in the order the engine sent it, across the kill and the re-sent tail.
    ours = {f"mllp/{cid}" for cid in messages}
    assert list(dict.fromkeys(e for e in on_raw if e in ours)) == [f"mllp/{cid}" for cid in messages]
