"""``aimass publish``: the hospital side — documents onto ``ingest.raw`` with the contract's headers."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from aiokafka.errors import KafkaConnectionError
from tqdm import tqdm

from services.cli.kafka import kafka_unreachable, producer
from shared.settings import Settings
from shared.topics import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE,
    Topic,
    rfc3339_now,
    topic_name,
)

CONTENT_TYPES = {
    "fhir": "application/fhir+json",
    "hl7v2": "x-application/hl7-v2+er7",
    "csv": "text/csv",
    "json": "application/json",
    "dicom": "application/dicom",
}
EXTENSIONS = {".fhir.json": "fhir", ".hl7": "hl7v2", ".er7": "hl7v2", ".csv": "csv", ".json": "json", ".dcm": "dicom"}


def format_of(path: Path, forced: str | None) -> str | None:
    if forced:
        return forced
    name = path.name.lower()
    return next((fmt for ext, fmt in EXTENSIONS.items() if name.endswith(ext)), None)


def expand(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


def document_headers(hospital: str, fmt: str | None) -> list[tuple[str, bytes]]:
    headers = {
        CE_SPECVERSION: "1.0",
        CE_ID: str(uuid.uuid4()),
        CE_SOURCE: hospital,
        CE_TYPE: "org.aimass.document.submitted.v1",
        CE_TIME: rfc3339_now(),
    }
    if fmt:
        headers[CONTENT_TYPE] = CONTENT_TYPES[fmt]
    return [(k, v.encode()) for k, v in headers.items()]


async def publish_files(paths: list[str], hospital: str, forced: str | None, settings: Settings) -> int:
    topic = topic_name(Topic.INGEST_RAW, settings.topic_prefix)
    documents: list[tuple[str, bytes, str | None]] = []
    failed = 0
    for path in ([] if paths == ["-"] else expand(paths)):
        try:
            documents.append((str(path), path.read_bytes(), format_of(path, forced)))
        except OSError as error:
            print(f"aimass publish: cannot read {path}: {error.strerror}", file=sys.stderr)
            failed += 1
    if paths == ["-"]:
        documents.append(("<stdin>", sys.stdin.buffer.read(), forced))

    client = producer(settings)
    try:
        await client.start()
    except KafkaConnectionError:
        print(kafka_unreachable(settings), file=sys.stderr)
        return 1
    sent = 0
    try:
        for name, body, fmt in tqdm(documents, desc=f"publishing to {topic}", unit="doc", disable=None):
            try:
                await client.send_and_wait(topic, body, headers=document_headers(hospital, fmt))
                sent += 1
            except Exception as error:  # one unreadable or oversized document must not stop the rest
                print(f"aimass publish: {name}: {type(error).__name__}", file=sys.stderr)
                failed += 1
    finally:
        await client.stop()
    print(f"sent {sent}, failed {failed} (topic {topic}, hospital {hospital})")
    return 0 if failed == 0 else 1
