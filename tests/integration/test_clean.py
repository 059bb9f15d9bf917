"""clean as a real process on the real broker and Redis: units, quality flags, duplicates inside a burst and across
a restart, a crashed batch re-emitted under the same derived ids."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from redis.asyncio import Redis

from services.clean.adapters.redis_seen import RedisSeenEvents
from services.clean.dedup import Candidate, Verdict
from services.clean.fingerprint import content_fingerprint
from services.cli.scenario.heart import records_by_hospital
from shared.broker import ensure_topics
from shared.schemas import CanonicalRecord, CleanRecord
from shared.schemas.records import LOINC
from shared.settings import Settings
from shared.tasks import feature_value, load_tasks
from shared.topics import Topic, cloudevent_headers, derived_event_id, event_type, topic_name
from tests.support.factories.clean import GLUCOSE_MG_PER_MMOL, SENDS, document, heart_document, record_of
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess, free_port
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """This module's own prefix and ports: its clean must not share partitions with the session pipeline's."""
    own = settings_for(tmp_path_factory.mktemp("clean"), f"cln-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture(scope="module")
def clean(settings: Settings) -> Iterator[ServiceProcess]:
    process = ServiceProcess("clean", settings).start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
async def kafka(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    client = await producer(settings)
    yield client
    await client.stop()


@pytest.fixture
async def cleaned(settings: Settings) -> AsyncIterator[TopicReader]:
    reader = await TopicReader(settings, Topic.RECORDS_CLEAN).open()
    yield reader
    await reader.close()


def unique(doc: dict[str, Any]) -> dict[str, Any]:
    """A patient of this run only: content de-duplication must not meet another run's records."""
    return {**doc, "patient_id": f"P-{uuid.uuid4().hex[:12]}"}


async def enqueue(
    kafka: AIOKafkaProducer, settings: Settings, record: CanonicalRecord, ce_id: str
) -> asyncio.Future[object]:
    headers = cloudevent_headers(service="ingest", type_=event_type("record", "ingested"), event_id=ce_id)
    return await kafka.send(
        topic_name(Topic.RECORDS_INGESTED, settings.topic_prefix),
        record.model_dump_json().encode(),
        key=record.patient.encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


async def send(kafka: AIOKafkaProducer, settings: Settings, record: CanonicalRecord, ce_id: str) -> None:
    await (await enqueue(kafka, settings, record, ce_id))


def headers(message: ConsumerRecord) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers}


def of_patient(patient: str):
    def matches(message: ConsumerRecord) -> bool:
        return json.loads(message.value)["patient"] == patient

    return matches


def parsed(message: ConsumerRecord) -> CleanRecord:
    return CleanRecord.model_validate_json(message.value)


async def test_glucose_in_mg_per_dl_and_mmol_per_l_from_two_hospitals_is_one_canonical_value(
    clean: ServiceProcess, settings: Settings, kafka: AIOKafkaProducer, cleaned: TopicReader
) -> None:
    patient_id = f"P-{uuid.uuid4().hex[:12]}"
    cleveland = record_of({**document(g=(LOINC, "2345-7", 126.0, "mg/dL")), "patient_id": patient_id}, "cleveland")
    hungary = record_of(
        {
            **document(g=("urn:hospital:hungary:lab", "GLUK", 126.0 / GLUCOSE_MG_PER_MMOL, "mmol/l")),
            "patient_id": patient_id,
        },
        "hungary",
    )
    await send(kafka, settings, cleveland, str(uuid.uuid4()))
    await send(kafka, settings, hungary, str(uuid.uuid4()))
    found = [
        parsed(m)
        for m in await cleaned.wait_for(
            lambda m: json.loads(m.value)["record_id"] in {cleveland.record_id, hungary.record_id}, count=2, timeout=30
        )
    ]
    glucose = {r.hospital: r.observations[0] for r in found}
    assert glucose["cleveland"].value == glucose["hungary"].value == 126.0
    assert glucose["cleveland"].unit == glucose["hungary"].unit == "mg/dL"
    assert glucose["hungary"].code.code == "2345-7" and glucose["hungary"].as_sent.unit == "mmol/l"


async def test_cholesterol_zero_is_flagged_and_missing(
    clean: ServiceProcess, settings: Settings, kafka: AIOKafkaProducer, cleaned: TopicReader
) -> None:
    record = record_of(unique(heart_document(chol=0.0, dataset="Switzerland")), "switzerland")
    await send(kafka, settings, record, str(uuid.uuid4()))
    [message] = await cleaned.wait_for(of_patient(record.patient), timeout=30)
    out = parsed(message)
    features = out.features["heart_disease"]
    assert dict(zip(features.names, features.values, strict=True))["cholesterol"] is None
    kinds = {(f.kind, f.field) for f in out.quality_flags}
    assert ("implausible", "2093-3") in kinds and ("missing", "cholesterol") in kinds
    cholesterol = next(o for o in out.observations if o.code.code == "2093-3")
    assert cholesterol.value is None and cholesterol.as_sent.value == 0.0


async def test_an_unmapped_local_code_is_flagged_not_lost(
    clean: ServiceProcess, settings: Settings, kafka: AIOKafkaProducer, cleaned: TopicReader
) -> None:
    record = record_of(unique(document(x=("urn:hospital:cleveland:lab", "TROP-HS", 14.0, "ng/L"))), "cleveland")
    await send(kafka, settings, record, str(uuid.uuid4()))
    [message] = await cleaned.wait_for(of_patient(record.patient), timeout=30)
    out = parsed(message)
    [kept] = out.observations
    assert (kept.code.system, kept.code.code, kept.value, kept.unit) == (
        "urn:hospital:cleveland:lab",
        "TROP-HS",
        14.0,
        "ng/L",
    )
    assert [(f.kind, f.field) for f in out.quality_flags] == [("unmapped_code", "TROP-HS")]


async def test_the_four_hospitals_come_out_with_comparable_features(
    clean: ServiceProcess, settings: Settings, kafka: AIOKafkaProducer, cleaned: TopicReader
) -> None:
    task = load_tasks()["heart_disease"]
    expected: dict[str, list[float | None]] = {}
    for hospital, documents in records_by_hospital(limit_per_hospital=6).items():
        for doc in documents:
            doc = unique(doc)
            reference = record_of(doc, "reference")
            record = record_of(SENDS[hospital](doc), hospital, str(uuid.uuid4()))
            expected[record.record_id] = [feature_value(reference, f) for f in task.features]
            await send(kafka, settings, record, str(uuid.uuid4()))
    found = await cleaned.wait_for(lambda m: json.loads(m.value)["record_id"] in expected, count=24, timeout=60)
    for message in found:
        out = parsed(message)
        values = out.features["heart_disease"].values
        for want, got in zip(expected[out.record_id], values, strict=True):
            assert got == want if want is None else got == pytest.approx(want, rel=1e-4), out.hospital
    assert {parsed(m).hospital for m in found} == {"cleveland", "hungary", "va-long-beach", "switzerland"}


def test_readiness_names_the_code_tables_and_tasks_in_use(clean: ServiceProcess) -> None:
    body = clean.get("/readyz", timeout=5).json()
    assert set(body["code_tables"]) == {"*", "cleveland", "hungary", "switzerland", "va-long-beach"}
    assert "heart_disease" in body["tasks"]


async def test_a_burst_comes_out_once_per_record_with_duplicates_inside_it_dropped(
    clean: ServiceProcess, settings: Settings, kafka: AIOKafkaProducer, cleaned: TopicReader
) -> None:
    docs = [unique(heart_document(chol=200.0 + n)) for n in range(60)]
    records = [(record_of(doc, "cleveland", f"m-{uuid.uuid4()}"), str(uuid.uuid4())) for doc in docs]
    resent = record_of(docs[1], "cleveland", f"m-{uuid.uuid4()}")  # same content, new message and event id
    burst = [*records, records[0], (resent, str(uuid.uuid4()))]
    await asyncio.gather(*[await enqueue(kafka, settings, record, ce_id) for record, ce_id in burst])
    wanted = {record.record_id: ce_id for record, ce_id in records}
    found = await cleaned.wait_for(lambda m: json.loads(m.value)["record_id"] in wanted, count=60, timeout=60)
    assert sorted(parsed(m).record_id for m in found) == sorted(wanted)
    assert {headers(m)["ce_id"] for m in found} == {derived_event_id("clean", ce_id) for ce_id in wanted.values()}
    # Same patients, so the same partitions, after the duplicates: once these are out, the duplicates were handled.
    barriers = [
        record_of({**doc, "recorded_at": "2026-02-01T00:00:00+00:00"}, "cleveland", f"m-{uuid.uuid4()}")
        for doc in docs[:2]
    ]
    for barrier in barriers:
        await send(kafka, settings, barrier, str(uuid.uuid4()))
    ids = {barrier.record_id for barrier in barriers}
    await cleaned.wait_for(lambda m: json.loads(m.value)["record_id"] in ids, count=2, timeout=30)
    assert len([m for m in cleaned.records if json.loads(m.value)["record_id"] in wanted]) == 60
    assert not [m for m in cleaned.records if json.loads(m.value)["record_id"] == resent.record_id]


async def test_a_batch_claimed_but_never_remembered_is_emitted_under_the_same_derived_ids(
    clean: ServiceProcess, settings: Settings, kafka: AIOKafkaProducer, cleaned: TopicReader
) -> None:
    records = [
        (record_of(unique(heart_document()), "cleveland", f"m-{uuid.uuid4()}"), str(uuid.uuid4())) for _ in range(5)
    ]
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:  # what a process that crashed before the broker's acks left behind: the claims, not the memory
        crashed = RedisSeenEvents(redis, settings.topic_prefix, settings.dedup_ttl_seconds)
        claims = [Candidate(ce_id, content_fingerprint(record)) for record, ce_id in records]
        assert set(await crashed.judge(claims)) == {Verdict.NEW}
    finally:
        await redis.aclose()
    for record, ce_id in records:
        await send(kafka, settings, record, ce_id)
    wanted = {record.record_id: ce_id for record, ce_id in records}
    found = await cleaned.wait_for(lambda m: json.loads(m.value)["record_id"] in wanted, count=5, timeout=30)
    assert {headers(m)["ce_id"] for m in found} == {derived_event_id("clean", ce_id) for ce_id in wanted.values()}


async def test_duplicates_by_id_and_by_content_give_one_output_across_a_restart(
    clean: ServiceProcess, settings: Settings, kafka: AIOKafkaProducer, cleaned: TopicReader
) -> None:
    doc = unique(heart_document())
    first_id = str(uuid.uuid4())
    first = record_of(doc, "cleveland", "m-first")
    await send(kafka, settings, first, first_id)
    await cleaned.wait_for(of_patient(first.patient), timeout=30)

    await send(kafka, settings, first, first_id)  # the same event again
    await send(kafka, settings, record_of(doc, "cleveland", "m-resent"), str(uuid.uuid4()))  # same content, new id
    clean.stop()
    await send(kafka, settings, first, first_id)  # while clean is down: handled by the next process
    await send(kafka, settings, record_of(doc, "cleveland", "m-resent-2"), str(uuid.uuid4()))
    restarted = ServiceProcess("clean", settings, AIMASS_CLEAN_PORT=str(free_port())).start()
    try:
        restarted.wait_ready()
        # Same patient, so the same partition, after the duplicates: once it is out, they were all handled.
        barrier = record_of({**doc, "recorded_at": "2026-02-01T00:00:00+00:00"}, "cleveland", "m-barrier")
        await send(kafka, settings, barrier, str(uuid.uuid4()))
        await cleaned.wait_for(lambda m: json.loads(m.value)["record_id"] == barrier.record_id, timeout=60)
        outputs = [parsed(m) for m in cleaned.records if of_patient(first.patient)(m)]
        assert sorted(r.record_id for r in outputs) == sorted([first.record_id, barrier.record_id])
        metrics = restarted.get("/metrics", timeout=5).text  # the new process dropped both kinds
        assert 'aimass_clean_duplicates_total{kind="event_id"} 1.0' in metrics
        assert 'aimass_clean_duplicates_total{kind="content"} 1.0' in metrics
    finally:
        restarted.stop()  # last test of the module: the fixture's process stays stopped
