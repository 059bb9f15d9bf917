"""ingest on the real broker: every hospital format (real UCI rows and samples written from the specifications)
into canonical records, parts rejected alone, claim checks, audit, garbage bursts, publish and replay, and a scan
of everything ingest produced for the identifiers that went in."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pydicom
import pytest
from aiokafka import ConsumerRecord
from pydicom.data import get_testdata_file

from services.cli.scenario import formats
from services.ingest.pseudonym import Pseudonymizer
from shared.broker import ensure_topics
from shared.schemas import CanonicalRecord
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import (
    CE_ID,
    CE_SOURCE,
    CE_TYPE,
    DLQ_ERROR,
    DLQ_SERVICE,
    Topic,
    decode_headers,
    event_type,
    topic_name,
)
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess, environment
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration
FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "ingest"
FHIR, HL7, CSV, JSON, DICOM = (
    "application/fhir+json",
    "x-application/hl7-v2+er7",
    "text/csv",
    "application/json",
    "application/dicom",
)
# Every identifier that goes into ingest during this module; the last test looks for them in what came out.
IDENTIFIERS: set[str] = {
    "CCF-0048213",
    "078-05-1120",
    "Brightwater",
    "Winifred",
    "Aurelia",
    "(216) 555-0187",
    "w.brightwater@example.org",
    "1958-06-02",
    "42 Larchmere Boulevard",
    "V-2026-5521",
    "Hargreave",
    "HU-558-2231",
    "OKI-4471093",
    "Feherhegyi",
    "Erzsebet",
    "19490721",
    "Rozsadomb",
    "+36-1-555-0143",
    "V-2026-8812",
    "OKI-9912230",
    "Lendvay",
    "Gedeon",
    "19310215",
    "+36-62-555-0190",
    "VA-LB-30041",
    "Ashdown",
    "Perpetua",
    "Merriweather",
    "Thaddeus",
    "Underhill",
    "Clementine",
    "+1-562-555-011",
    "1961-03-14",
    "1955-12-01",
    "1930-01-20",
    "VLB-900",
    "CompressedSamples",
    "1CT1",
    "4MR1",
    "JFK IMAGING",
    pydicom.dcmread(get_testdata_file("CT_small.dcm")).StudyInstanceUID,
    pydicom.dcmread(get_testdata_file("MR_small.dcm")).StudyInstanceUID,
}


@pytest.fixture(scope="module")
def hospitals_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hospitals")
    for path in (PROJECT_ROOT / "deploy" / "hospitals").glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def ingest_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A topic prefix of this module's own: the records and dead letters here are ingest's alone."""
    own = settings_for(tmp_path_factory.mktemp("ingest-var"), f"it-ingest-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture(scope="module")
def ingest(ingest_settings: Settings, hospitals_dir: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess("ingest", ingest_settings, AIMASS_HOSPITALS_DIR=str(hospitals_dir)).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def pseudonym(settings: Settings, hospital: str, patient_id: str) -> str:
    return Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())(hospital, patient_id)


async def publish(settings: Settings, documents: list[tuple[str, bytes, str | None]]) -> list[str]:
    """Sends (hospital, body, content-type) documents; returns their message ids."""
    client = await producer(settings)
    ids = []
    try:
        for hospital, body, content_type in documents:
            ids.append(f"it-{uuid.uuid4()}")
            headers = [(CE_SOURCE, hospital.encode()), (CE_ID, ids[-1].encode())]
            if content_type:
                headers.append(("content-type", content_type.encode()))
            await client.send_and_wait(topic_name(Topic.INGEST_RAW, settings.topic_prefix), body, headers=headers)
    finally:
        await client.stop()
    return ids


async def distinct(
    reader: TopicReader, key: Callable[[ConsumerRecord], str], wanted: set[str], timeout: float
) -> dict[str, ConsumerRecord]:
    """The last record of each wanted key; duplicates (at least once: a re-delivered batch) count once."""
    deadline = time.monotonic() + timeout
    while True:
        found = {key(r): r for r in reader.records if key(r) in wanted}
        if len(found) == len(wanted):
            return found
        await reader.wait_for(lambda _: True, len(reader.records) + 1, max(deadline - time.monotonic(), 0.0))


def ingest_audit_message_id(record: ConsumerRecord) -> str:
    """The message an ingest audit event is about; access audit events share the topic and are about no message."""
    if decode_headers(record.headers).get(CE_TYPE) != event_type("audit", "recorded"):
        return ""
    return json.loads(record.value)["message_id"]


async def outcome(
    settings: Settings, message_ids: list[str], timeout: float = 30.0
) -> tuple[dict[str, dict], dict[str, CanonicalRecord]]:
    """The audit event of each message and every record they produced (by record id)."""
    audit, records = TopicReader(settings, Topic.AUDIT), TopicReader(settings, Topic.RECORDS_INGESTED)
    await audit.open()
    await records.open()
    try:
        found = await distinct(audit, ingest_audit_message_id, set(message_ids), timeout)
        events = {i: json.loads(r.value) for i, r in found.items()}
        record_ids = {i for e in events.values() for i in e["record_ids"]}
        got = await distinct(records, lambda r: json.loads(r.value)["record_id"], record_ids, timeout)
        return events, {i: CanonicalRecord.model_validate_json(r.value) for i, r in got.items()}
    finally:
        await audit.close()
        await records.close()


def assert_carries(record: CanonicalRecord, document: dict, hospital: str, settings: Settings) -> None:
    """The record holds what the UCI document said, in the hospital's codes and units, under its pseudonym."""
    assert record.patient == pseudonym(settings, hospital, document["patient_id"])
    assert record.demographics.age_years == min(document["age_years"], 90)
    assert record.demographics.sex == document["sex"]
    key = settings.pseudonym_key.get_secret_value().encode()  # type: ignore[union-attr]
    shift = timedelta(days=Pseudonymizer(key).date_shift_days(record.patient))
    assert record.recorded_at - shift == datetime.fromisoformat(document["recorded_at"])  # shifted per patient
    got = {o.code.code: o for o in record.observations}
    for sent in document["observations"]:
        code = sent["code"]["code"]
        if hospital == "va-long-beach" and code == formats.CHOLESTEROL_MASS:  # VA reports mmol/L
            converted = got["14647-2"]
            assert converted.unit == "mmol/L"
            assert converted.value == pytest.approx(round(sent["value"] / formats.MG_DL_PER_MMOL_L, 2))
        elif sent.get("value") is not None:
            assert (got[code].code.system, got[code].value, got[code].unit) == (
                sent["code"]["system"],
                sent["value"],
                sent["unit"],
            )
        else:
            assert got[code].value_code.code == sent["value_code"]["code"]
    assert len(record.observations) == len(document["observations"])


async def test_every_format_of_the_four_hospitals_becomes_canonical_records(ingest_settings, ingest) -> None:
    from services.cli.scenario.heart import records_by_hospital

    documents = records_by_hospital(4)
    for hospital_documents in documents.values():
        for document in hospital_documents:
            IDENTIFIERS.update(formats.identity(document).strings())
    sent = (
        [("cleveland", json.dumps(formats.fhir_bundle(d)).encode(), FHIR) for d in documents["cleveland"]]
        + [("hungary", formats.hl7_oru(d).encode(), HL7) for d in documents["hungary"]]
        + [("va-long-beach", formats.csv_rows(documents["va-long-beach"]).encode(), CSV)]
        + [("switzerland", json.dumps(d).encode(), JSON) for d in documents["switzerland"]]
    )
    ids = await publish(ingest_settings, sent)
    events, records = await outcome(ingest_settings, ids)

    assert [events[i]["outcome"] for i in ids] == ["ingested"] * len(ids)
    assert [events[i]["source_format"] for i in ids] == ["fhir"] * 4 + ["hl7v2"] * 4 + ["csv"] + ["json"] * 4
    by_patient = {(r.hospital, r.patient): r for r in records.values()}
    assert len(records) == 16
    for hospital, hospital_documents in documents.items():
        for document in hospital_documents:
            record = by_patient[(hospital, pseudonym(ingest_settings, hospital, document["patient_id"]))]
            assert_carries(record, document, hospital, ingest_settings)
            if hospital in ("cleveland", "switzerland"):  # FHIR Conditions and JSON conditions travel
                assert [c.code.code for c in record.conditions] == [c["code"]["code"] for c in document["conditions"]]


async def test_samples_from_the_specifications_and_their_bad_parts(ingest_settings, ingest) -> None:
    bundle = json.loads((FIXTURES / "vitals-and-labs.fhir.json").read_text())
    bundle["entry"][5]["resource"]["valueQuantity"] = {"value": "6,1", "unit": "%"}
    ids = await publish(
        ingest_settings,
        [
            ("cleveland", json.dumps(bundle).encode(), FHIR),
            ("hungary", (FIXTURES / "lipid-panel.oru.hl7").read_bytes(), HL7),
            ("hungary", (FIXTURES / "admission-and-result.mllp.hl7").read_bytes(), None),
            ("va-long-beach", (FIXTURES / "va-long-beach-with-a-bad-row.csv").read_bytes(), CSV),
        ],
    )
    dead = await TopicReader(ingest_settings, Topic.DEADLETTER).open()
    try:
        events, records = await outcome(ingest_settings, ids)
        parts = await dead.wait_for(lambda r: decode_headers(r.headers).get(CE_ID, "").split("#")[0] in ids, 2)
    finally:
        await dead.close()
    fhir, oru, mllp, table = (events[i] for i in ids)
    assert (fhir["outcome"], fhir["records"], fhir["rejected_parts"]) == ("partially_ingested", 1, 1)
    assert (oru["outcome"], mllp["records"], table["records"], table["rejected_parts"]) == ("ingested", 2, 2, 1)
    reasons = {decode_headers(p.headers)[CE_ID].split("#")[1]: decode_headers(p.headers)[DLQ_ERROR] for p in parts}
    assert reasons["entry-5"].startswith("FHIR Bundle.entry[5] Observation.valueQuantity.value:")
    assert reasons["row-2"] == "CSV row 2 column 'resting_bp_mmhg': not a number"
    assert all(decode_headers(p.headers)[DLQ_SERVICE] == "ingest" for p in parts)

    [cleveland] = [records[i] for i in fhir["record_ids"]]
    observations = {o.code.code: o for o in cleveland.observations}
    assert "4548-4" not in observations and observations["2093-3"].value == 233.0
    assert (observations["8480-6"].value, observations["8480-6"].unit) == (142.0, "mm[Hg]")
    assert cleveland.demographics.age_years == 68 and cleveland.patient == pseudonym(
        ingest_settings, "cleveland", "CCF-0048213"
    )
    [hungary] = [records[i] for i in oru["record_ids"]]
    assert {o.code.code: o.value for o in hungary.observations}["2093-3"] == 262.0
    assert hungary.demographics.age_years == 77
    assert sorted(records[i].demographics.age_years for i in table["record_ids"]) == [65, 90]


def shipped(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def stored_claim_check(uri: str, data_dir: Path) -> pydicom.Dataset:
    stored = Path(urlparse(uri).path)
    assert stored.is_relative_to(data_dir.resolve()) and stored.exists()
    return pydicom.dcmread(stored)


async def test_dicom_metadata_and_the_claim_check_on_disk(ingest_settings, ingest) -> None:
    ct, mr = shipped("CT_small.dcm"), shipped("MR_small.dcm")
    ids = await publish(ingest_settings, [("cleveland", ct, DICOM), ("cleveland", mr, None)])
    events, records = await outcome(ingest_settings, ids)
    [ct_record], [mr_record] = ([records[i] for i in events[m]["record_ids"]] for m in ids)
    assert ct_record.patient == pseudonym(ingest_settings, "cleveland", "1CT1")
    [ct_image], [mr_image] = ct_record.imaging, mr_record.imaging
    assert (ct_image.modality, ct_image.rows, ct_image.columns) == ("CT", 128, 128)
    assert (mr_image.modality, mr_image.rows, mr_image.uri) == ("MR", 64, None)
    copy = stored_claim_check(ct_image.uri, ingest_settings.data_path)
    assert copy.PatientID == ct_record.patient and copy.StudyInstanceUID == ct_image.study_uid
    assert copy.Rows == 128 and "PatientName" not in copy


async def test_a_burst_of_garbage_is_dead_lettered_and_the_service_stays_ready(ingest_settings, ingest) -> None:
    generator = random.Random(20261129)
    content_types = [
        FHIR,
        HL7,
        CSV,
        JSON,
        DICOM,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        None,
        "image/png",
    ]
    garbage = [
        (
            generator.choice(["cleveland", "hungary", "va-long-beach", ""]),
            generator.randbytes(generator.randint(0, 3000)),
            generator.choice(content_types),
        )
        for _ in range(400)
    ]
    ids = await publish(ingest_settings, garbage)
    [good] = await publish(
        ingest_settings,
        [("switzerland", json.dumps({"patient_id": "CH-GOOD-1", "age_years": 44, "sex": "female"}).encode(), JSON)],
    )
    _, records = await outcome(ingest_settings, [good], timeout=60)
    assert [r.demographics.age_years for r in records.values()] == [44]
    dead = await TopicReader(ingest_settings, Topic.DEADLETTER).open()
    try:
        wanted = set(ids)
        letters = await dead.wait_for(lambda r: decode_headers(r.headers).get(CE_ID) in wanted, len(ids), 30)
    finally:
        await dead.close()
    assert all(decode_headers(r.headers)[DLQ_ERROR] for r in letters)
    assert {r.value for r in letters} <= {body for _, body, _ in garbage}  # the original bytes, unchanged
    assert ingest.get("/readyz", timeout=5).status_code == 200
    metrics = ingest.get("/metrics", timeout=5).text
    assert "aimass_ingest_parse_failures_total{reason=" in metrics and ingest.process.poll() is None


Headers = list[tuple[str, bytes | None]]


async def publish_at_once(settings: Settings, documents: list[tuple[Headers, bytes, int | None]]) -> None:
    """Sends (headers, body, partition) documents without waiting between them, so that ingest reads them in few
    batches."""
    client = await producer(settings)
    try:
        topic = topic_name(Topic.INGEST_RAW, settings.topic_prefix)
        await asyncio.gather(
            *[
                await client.send(topic, body, headers=headers, partition=partition)
                for headers, body, partition in documents
            ]
        )
    finally:
        await client.stop()


def canonical(patient: str, age: int) -> bytes:
    return json.dumps({"patient_id": patient, "age_years": age, "sex": "female"}).encode()


def sent_by(
    hospital: str, message_id: str, content_type: bytes | None = JSON.encode(), **extra: bytes | None
) -> Headers:
    return [
        (CE_SOURCE, hospital.encode()),
        (CE_ID, message_id.encode()),
        ("content-type", content_type),
        *extra.items(),
    ]


async def test_a_batch_mixing_good_and_bad_documents(ingest_settings, ingest) -> None:
    run = uuid.uuid4().hex[:8]
    good = {f"{run}-good-{n}": canonical(f"CH-BATCH-{n}", 30 + n) for n in range(20)}
    bad = {
        f"{run}-garbage": b"garbage {{{",
        f"{run}-empty": b"",
        f"{run}-hl7": b"MSH|^~\\&|broken",
        f"{run}-no-type": b"\x00\x01\x02 not a document",
    }
    documents: list[tuple[Headers, bytes, int | None]] = [
        (sent_by("switzerland", i, x_trace=b"\xff\xfe not utf-8", x_empty=None), body, None) for i, body in good.items()
    ]
    documents += [
        (sent_by("hungary", i, None if i.endswith("no-type") else JSON.encode()), body, None) for i, body in bad.items()
    ]
    IDENTIFIERS.update(f"CH-BATCH-{n}" for n in range(20))
    await publish_at_once(ingest_settings, random.Random(7).sample(documents, len(documents)))

    events, records = await outcome(ingest_settings, [*good, *bad])
    assert {i: events[i]["outcome"] for i in good} == dict.fromkeys(good, "ingested")
    assert {i: events[i]["outcome"] for i in bad} == dict.fromkeys(bad, "rejected")
    assert sorted(r.demographics.age_years for r in records.values()) == list(range(30, 50))
    dead = await TopicReader(ingest_settings, Topic.DEADLETTER).open()
    try:
        letters = await dead.wait_for(lambda r: decode_headers(r.headers).get(CE_ID) in bad, len(bad), 30)
    finally:
        await dead.close()
    assert sorted(decode_headers(r.headers)[CE_ID] for r in letters) == sorted(bad)
    assert {r.value for r in letters} == set(bad.values())
    assert all(decode_headers(r.headers)[DLQ_ERROR] for r in letters)
    assert ingest.get("/readyz", timeout=5).status_code == 200 and ingest.process.poll() is None


async def test_a_batch_that_fails_midway_is_delivered_again_whole(hospitals_dir, tmp_path) -> None:
    """The claim-check folder cannot be created (a file is in its way): the CT image raises, the whole batch is
    nacked and re-delivered until the folder is fixed; then every document of every partition arrives."""
    own = settings_for(tmp_path, f"it-ingest-retry-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(own)
    own.data_path.mkdir(parents=True)
    (own.data_path / "imaging").write_bytes(b"in the way")
    ct = [(sent_by("cleveland", "ct", DICOM.encode()), shipped("CT_small.dcm"), 0)]
    others = [
        (sent_by("switzerland", f"doc-{p}-{n}"), canonical(f"CH-RETRY-{p}-{n}", 20 + n), p)
        for n in range(10)
        for p in range(own.topic_partitions)
    ]
    IDENTIFIERS.update(f"CH-RETRY-{p}-{n}" for n in range(10) for p in range(own.topic_partitions))
    await publish_at_once(own, ct + others)  # all there before ingest starts: its first batch holds them all

    process = ServiceProcess("ingest", own, AIMASS_HOSPITALS_DIR=str(hospitals_dir)).start()
    try:
        process.wait_ready()
        deadline = asyncio.get_running_loop().time() + 30
        while process.log_path.read_text(errors="replace").count("handler failed") < 2:
            assert asyncio.get_running_loop().time() < deadline, "the failing batch was not retried"
            await asyncio.sleep(0.2)
        (own.data_path / "imaging").unlink()
        events, records = await outcome(
            own, ["ct"] + [f"doc-{p}-{n}" for n in range(10) for p in range(own.topic_partitions)], timeout=60
        )
        assert all(e["outcome"] == "ingested" for e in events.values()) and len(events) == 31
        assert sorted(r.demographics.age_years for r in records.values() if r.hospital == "switzerland") == sorted(
            20 + n for n in range(10) for _ in range(own.topic_partitions)
        )
        [ct_record] = [r for r in records.values() if r.hospital == "cleveland"]
        assert stored_claim_check(ct_record.imaging[0].uri, own.data_path).Rows == 128
    finally:
        process.stop()


def cli(settings: Settings, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=PROJECT_ROOT,
        env=environment(settings),
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


async def test_publish_a_folder_and_replay_after_the_mapping_is_fixed(
    ingest_settings, ingest, hospitals_dir, tmp_path
) -> None:
    hospital = f"st-elsewhere-{uuid.uuid4().hex[:6]}"  # no mapping file yet: its CSV is dead-lettered
    folder = tmp_path / "outbox"
    folder.mkdir()
    shutil.copy(FIXTURES / "va-long-beach-with-a-bad-row.csv", folder / "export.csv")
    shutil.copy(FIXTURES / "lipid-panel.oru.hl7", folder / "results.hl7")
    dead = await TopicReader(ingest_settings, Topic.DEADLETTER).open()
    try:
        published = cli(ingest_settings, "publish", str(folder), "--hospital", hospital)
        assert published.returncode == 0, published.stderr.decode()
        assert b"sent 2, failed 0" in published.stdout
        await dead.wait_for(
            lambda r: (
                decode_headers(r.headers).get(CE_SOURCE) == hospital
                and "no column mapping" in decode_headers(r.headers)[DLQ_ERROR]
            ),
            1,
            30,
        )
    finally:
        await dead.close()

    mapping = (
        (hospitals_dir / "va-long-beach.yaml").read_text().replace("hospital: va-long-beach", f"hospital: {hospital}")
    )
    (hospitals_dir / f"{hospital}.yaml").write_text(mapping)
    ingest.stop()
    ingest.start().wait_ready()  # the fix: a mapping file, read at start

    dry = cli(
        ingest_settings,
        "replay",
        "--hospital",
        hospital,
        "--reason",
        "no column mapping",
        "--dry-run",
        "--timeout",
        "3",
    )
    assert b"would replay" in dry.stdout and b"replayed 1," in dry.stdout
    audit = await TopicReader(ingest_settings, Topic.AUDIT).open()
    try:
        replayed = cli(
            ingest_settings,
            "replay",
            "--hospital",
            hospital,
            "--reason",
            "no column mapping",
            "--topic",
            "ingest.raw",
            "--timeout",
            "3",
        )
        assert b"replayed 1," in replayed.stdout, replayed.stdout.decode() + replayed.stderr.decode()
        [event] = await audit.wait_for(
            lambda r: (
                json.loads(r.value)["hospital"] == hospital
                and json.loads(r.value)["source_format"] == "csv"
                and json.loads(r.value)["records"] > 0
            ),
            1,
            30,
        )
    finally:
        await audit.close()
    assert json.loads(event.value)["records"] == 2 and json.loads(event.value)["rejected_parts"] == 1


async def test_nothing_ingest_produced_carries_an_identifier_that_went_in(ingest_settings, ingest) -> None:
    """Runs last: every record, every audit event, every claim-check file and ingest's log."""
    texts: list[tuple[str, str]] = []
    for topic in (Topic.RECORDS_INGESTED, Topic.AUDIT):
        reader = await TopicReader(ingest_settings, topic).open()
        try:
            found = await reader.wait_for(lambda _: True, 20, 10)
            await asyncio.sleep(1)
            await reader.wait_for(lambda _: True, len(found), 1)
        finally:
            await reader.close()
        texts.extend((f"{topic} offset {r.offset}", r.value.decode("utf-8", "replace")) for r in reader.records)
    for path in (ingest_settings.data_path / "imaging").rglob("*.dcm"):
        texts.append((str(path), path.read_bytes().decode("latin-1")))
    texts.append((str(ingest.log_path), ingest.log_path.read_text(errors="replace")))
    assert sum(1 for where, _ in texts if "records.ingested" in where) >= 25
    leaks = [(where, identifier) for where, text in texts for identifier in IDENTIFIERS if identifier in text]
    assert leaks == []
