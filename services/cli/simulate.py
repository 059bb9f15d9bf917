"""``aimass simulate``: four real hospitals publish their patients; follow them through the platform.

Every document gets a fresh ``ce_id``; the records it must become are known in advance (ingest derives record ids
from the hospital and ``ce_id``), so the summary counts exactly this run's results, whatever else is on the topics.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from tqdm import tqdm

from services.cli.kafka import kafka_unreachable, producer
from services.cli.publish import CONTENT_TYPES
from services.cli.scenario.heart import records_by_hospital
from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import CE_ID, DLQ_ERROR, Topic, decode_headers, derived_event_id, topic_name

BROKEN = [
    ("cleveland", b'{"patient_id": "CLEVELAND-99999", "observations": [', "truncated JSON"),
    ("hungary", b'{"observations": []}', "no patient_id"),
    ("switzerland", b"\xff\xfe not text at all", "not UTF-8"),
    ("va-long-beach", b'{"patient_id": "VA-1", "age_years": -4}', "negative age"),
]


@dataclass
class Progress:
    expected: dict[str, str] = field(default_factory=dict)  # record id -> hospital
    broken: set[str] = field(default_factory=set)  # ce_id of each broken document
    cleaned: Counter[str] = field(default_factory=Counter)
    deadletters: list[str] = field(default_factory=list)


async def _at_end(settings: Settings, *topics: Topic) -> AIOKafkaConsumer:
    """A consumer of ``topics`` positioned at their current end, so it sees only what comes after."""
    names = [topic_name(t, settings.topic_prefix) for t in topics]
    consumer = AIOKafkaConsumer(*names, **kafka_client_options(settings), enable_auto_commit=False,
                                auto_offset_reset="latest")
    await consumer.start()
    while not consumer.assignment():  # the first poll joins and assigns; records it returns predate this run
        await consumer.getmany(timeout_ms=100)
    for partition in consumer.assignment():
        await consumer.position(partition)  # fixes the starting offset before anything is published
    return consumer


async def simulate(settings: Settings, per_hospital: int | None, wait_seconds: float) -> int:
    # Encounters dated from now: a second run is new clinical data, not a duplicate clean would rightly drop.
    documents = records_by_hospital(per_hospital, start=datetime.now(UTC).replace(microsecond=0))
    progress = Progress()
    client = producer(settings)
    try:
        await client.start()
        watcher = await _at_end(settings, Topic.RECORDS_CLEAN, Topic.DEADLETTER)
    except KafkaConnectionError:
        print(kafka_unreachable(settings), file=sys.stderr)
        return 1
    raw = topic_name(Topic.INGEST_RAW, settings.topic_prefix)
    started = time.monotonic()
    total = sum(len(v) for v in documents.values())
    try:
        with tqdm(total=total + len(BROKEN), desc="hospitals publishing", unit="doc", disable=None) as bar:
            for hospital, records in documents.items():
                for record in records:
                    ce_id = str(uuid.uuid4())
                    progress.expected[derived_event_id("ingest", f"{hospital}/{ce_id}", 0)] = hospital
                    await client.send(raw, json.dumps(record).encode(), headers=_headers(hospital, ce_id))
                    bar.update()
            for hospital, body, _ in BROKEN:
                ce_id = str(uuid.uuid4())
                progress.broken.add(ce_id)
                await client.send(raw, body, headers=_headers(hospital, ce_id))
                bar.update()
            await client.flush()
        await _follow(watcher, progress, total, wait_seconds)
    finally:
        await client.stop()
        await watcher.stop()
    _summary(documents, progress, time.monotonic() - started, settings)
    return 0 if sum(progress.cleaned.values()) == total and len(progress.deadletters) == len(BROKEN) else 1


def _headers(hospital: str, ce_id: str) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", ce_id.encode()), ("ce_source", hospital.encode()),
            ("ce_type", b"org.aimass.document.submitted.v1"), ("content-type", CONTENT_TYPES["json"].encode())]


async def _follow(watcher: AIOKafkaConsumer, progress: Progress, total: int, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    with tqdm(total=total + len(progress.broken), desc="through ingest and clean", unit="rec", disable=None) as bar:
        while time.monotonic() < deadline and (
            sum(progress.cleaned.values()) < total or len(progress.deadletters) < len(progress.broken)
        ):
            batches = await watcher.getmany(timeout_ms=500)
            for partition, records in batches.items():
                for record in records:
                    if partition.topic.endswith(Topic.DEADLETTER.value):
                        headers = decode_headers(record.headers)
                        if headers.get(CE_ID) in progress.broken:
                            progress.deadletters.append(headers.get(DLQ_ERROR, "?"))
                            bar.update()
                        continue
                    record_id = json.loads(record.value).get("record_id")
                    hospital = progress.expected.get(record_id)
                    if hospital:
                        progress.cleaned[hospital] += 1
                        bar.update()


def _summary(documents: dict[str, list[dict]], progress: Progress, seconds: float, settings: Settings) -> None:
    print("\nAI Mass demo — four hospitals, real UCI heart-disease records\n")
    print(f"  {'hospital':<15}{'published':>10}{'clean':>8}")
    for hospital, records in documents.items():
        print(f"  {hospital:<15}{len(records):>10}{progress.cleaned[hospital]:>8}")
    total = sum(progress.cleaned.values())
    print(f"\n  {total} records through ingest and clean in {seconds:.1f} s ({total / max(seconds, 1e-9):.0f}/s)")
    print(f"\n  dead letters ({len(progress.deadletters)} of {len(BROKEN)} broken documents):")
    for reason in progress.deadletters:
        print(f"    - {reason}")
    print("\n  where to look next:")
    print("    make status                     each part of the stack and its health")
    print(f"    {settings.public_url('ingest')}/metrics   Prometheus metrics (ports 8101-8106)")
    print("    .venv/bin/aimass tail records.clean --from-beginning --max 1")
    print("    .venv/bin/aimass tail deadletter --from-beginning")
    print("    make down                       stop everything\n")
