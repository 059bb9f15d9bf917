"""The foundation on the real broker: contract topics, CloudEvents headers, dead letters, readiness, metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import httpx
import pytest

from services.ingest.pseudonym import Pseudonymizer
from shared.settings import Settings
from shared.topics import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    DLQ_ERROR,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_SERVICE,
    Topic,
    decode_headers,
    derived_event_id,
    topic_name,
)
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess, free_port, wait_answering

SERVICES = ("ingest", "clean", "train", "infer", "fuse", "report")


def hospital_document(patient_id: str) -> bytes:
    return json.dumps(
        {
            "patient_id": patient_id,
            "birth_date": "1958-06-02",
            "sex": "male",
            "recorded_at": "2026-10-30T08:15:00Z",
            "observations": [{"code": {"system": "http://loinc.org", "code": "2093-3"}, "value": 233, "unit": "mg/dL"}],
        }
    ).encode()


def headers(hospital: str, ce_id: str, content_type: str = "application/json") -> list[tuple[str, bytes]]:
    return [(CE_SOURCE, hospital.encode()), (CE_ID, ce_id.encode()), ("content-type", content_type.encode())]


def record_id_of(record) -> str:
    return json.loads(record.value)["record_id"]


async def test_a_canonical_record_reaches_records_clean_with_cloudevents_headers(settings: Settings, pipeline) -> None:
    ce_id = f"msg-{uuid.uuid4()}"
    expected_record = derived_event_id("ingest", f"cleveland/{ce_id}", 0)
    reader = await TopicReader(settings, Topic.RECORDS_CLEAN).open()
    client = await producer(settings)
    try:
        await client.send_and_wait(
            topic_name(Topic.INGEST_RAW, settings.topic_prefix),
            hospital_document("MRN-100234"),
            headers=headers("cleveland", ce_id),
        )
        [record] = await reader.wait_for(lambda r: record_id_of(r) == expected_record, timeout=5.0)
    finally:
        await client.stop()
        await reader.close()

    value = json.loads(record.value)
    assert value["hospital"] == "cleveland"
    assert value["demographics"] == {"age_years": 68, "sex": "male"}
    assert value["observations"][0]["code"]["code"] == "2093-3"
    assert "MRN-100234" not in record.value.decode() and "1958-06-02" not in record.value.decode()
    pseudonym = Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())("cleveland", "MRN-100234")
    assert value["patient"] == pseudonym and record.key == pseudonym.encode()

    meta = decode_headers(record.headers)
    assert meta[CE_SPECVERSION] == "1.0"
    assert meta[CE_SOURCE] == "aimass/clean"
    assert meta[CE_TYPE] == "org.aimass.record.cleaned.v1"
    assert meta[CE_ID] == derived_event_id("clean", expected_record)
    assert meta[CE_TIME].endswith("Z")
    assert meta["content-type"] == "application/json"


async def test_garbage_is_dead_lettered_with_a_reason_and_ingest_stays_ready(settings: Settings, pipeline) -> None:
    ce_id = f"bad-{uuid.uuid4()}"
    garbage = b"\x00\x01 this is not a clinical document {"
    reader = await TopicReader(settings, Topic.DEADLETTER).open()
    client = await producer(settings)
    try:
        sent = await client.send_and_wait(
            topic_name(Topic.INGEST_RAW, settings.topic_prefix), garbage, headers=headers("hungary", ce_id)
        )
        [dead] = await reader.wait_for(lambda r: decode_headers(r.headers).get(CE_ID) == ce_id, timeout=5.0)
    finally:
        await client.stop()
        await reader.close()
    meta = decode_headers(dead.headers)
    assert dead.value == garbage
    assert meta[DLQ_SERVICE] == "ingest"
    assert meta[DLQ_ERROR].startswith("JSON: ")
    assert meta[DLQ_ORIGINAL_TOPIC] == topic_name(Topic.INGEST_RAW, settings.topic_prefix)
    assert (meta[DLQ_ORIGINAL_PARTITION], meta[DLQ_ORIGINAL_OFFSET]) == (str(sent.partition), str(sent.offset))
    assert meta[CE_SOURCE] == "hungary"
    for name in ("ingest", "clean"):
        assert pipeline[name].get("/readyz", timeout=3).status_code == 200


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (make deps installs it)")
async def test_an_outside_client_kcat_publishes_a_record_that_reaches_records_clean(
    settings: Settings, pipeline
) -> None:
    ce_id = f"kcat-{uuid.uuid4()}"
    expected_record = derived_event_id("ingest", f"switzerland/{ce_id}", 0)
    reader = await TopicReader(settings, Topic.RECORDS_CLEAN).open()
    try:
        subprocess.run(
            [
                "kcat",
                "-P",
                "-b",
                settings.kafka_bootstrap,
                "-t",
                topic_name(Topic.INGEST_RAW, settings.topic_prefix),
                "-H",
                "ce_source=switzerland",
                "-H",
                f"ce_id={ce_id}",
                "-H",
                "content-type=application/json",
            ],
            input=hospital_document("CH-77"),
            check=True,
            timeout=20,
        )
        await reader.wait_for(lambda r: record_id_of(r) == expected_record, timeout=5.0)
    finally:
        await reader.close()


async def test_clean_emits_a_duplicate_ce_id_once_even_across_a_restart(settings: Settings, pipeline) -> None:
    ingested = topic_name(Topic.RECORDS_INGESTED, settings.topic_prefix)
    patient = f"p-{uuid.uuid4().hex[:12]}"

    def canonical(record_id: str, recorded_at: str) -> bytes:
        # Different encounters differ in content too: clean also drops the same content under a new id.
        return json.dumps(
            {
                "record_id": record_id,
                "patient": patient,
                "hospital": "hungary",
                "recorded_at": recorded_at,
                "received_at": "2026-11-29T10:00:00Z",
                "source_format": "json",
            }
        ).encode()

    first, sentinel = str(uuid.uuid4()), str(uuid.uuid4())
    first_body = canonical(first, "2026-11-01T08:00:00Z")
    reader = await TopicReader(settings, Topic.RECORDS_CLEAN).open()
    client = await producer(settings)
    try:
        meta = [(CE_ID, first.encode()), ("content-type", b"application/json")]
        await client.send_and_wait(ingested, first_body, key=patient.encode(), headers=meta)
        await reader.wait_for(lambda r: record_id_of(r) == first)

        pipeline["clean"].stop()
        pipeline["clean"].start().wait_ready()

        # Same key, same partition, in order: once the sentinel is out, a re-emitted duplicate would be too.
        await client.send_and_wait(ingested, first_body, key=patient.encode(), headers=meta)
        await client.send_and_wait(
            ingested,
            canonical(sentinel, "2026-11-02T08:00:00Z"),
            key=patient.encode(),
            headers=[(CE_ID, sentinel.encode()), ("content-type", b"application/json")],
        )
        await reader.wait_for(lambda r: record_id_of(r) == sentinel, timeout=15.0)
    finally:
        await client.stop()
        await reader.close()
    assert sum(record_id_of(r) == first for r in reader.records) == 1
    assert pipeline["clean"].log_path.read_text().count('"exc_type"') == 0


def test_every_service_is_alive_ready_and_exports_faststream_metrics(pipeline) -> None:
    for name in SERVICES:
        url = pipeline[name].url
        assert httpx.get(f"{url}/healthz", timeout=3).status_code == 200
        ready = httpx.get(f"{url}/readyz", timeout=3)
        assert ready.status_code == 200, (name, ready.text)
        assert ready.json()["checks"] == {"kafka": "ok", "redis": "ok"}
        assert httpx.get(f"{url}/metrics", timeout=3).status_code == 401  # metrics are for operators
        metrics = pipeline[name].get("/metrics", timeout=3).text
        assert f'faststream_received_messages_total{{app_name="{name}",broker="kafka"' in metrics, name
        assert "aimass_events_total" in metrics


def test_readiness_is_503_while_redis_is_unreachable(settings: Settings) -> None:
    port = free_port()
    service = ServiceProcess(
        "fuse", settings, AIMASS_REDIS_URL="redis://127.0.0.1:1/0", AIMASS_FUSE_PORT=str(port)
    ).start()
    try:
        response = wait_answering(f"{service.url}/readyz", timeout=60.0)
        assert response.status_code == 503
        assert response.json()["checks"] == {"kafka": "ok", "redis": "down"}
        assert httpx.get(f"{service.url}/healthz", timeout=3).status_code == 200
    finally:
        service.stop()
