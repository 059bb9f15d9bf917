"""``aimass publish``: the hospital side — documents onto ``ingest.raw`` with the contract's headers (``--as-hospital``:
onto the hospital's own ``ingest.raw.<id>``, as the hospital's principal).

Files, folders (every file below them) or ``-`` for one document on stdin. The format comes from ``--format`` or
from each file's name (a ``.json`` file that holds a FHIR resource is sent as FHIR). Ends with a count of what was
sent and what failed; the exit status is 1 if anything failed.
"""

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
    hospital_input_topic,
    rfc3339_now,
    topic_name,
)

CONTENT_TYPES = {
    "fhir": "application/fhir+json",
    "hl7v2": "x-application/hl7-v2+er7",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "dicom": "application/dicom",
}
EXTENSIONS = {
    ".fhir.json": "fhir",
    ".hl7": "hl7v2",
    ".er7": "hl7v2",
    ".csv": "csv",
    ".xlsx": "xlsx",
    ".json": "json",
    ".dcm": "dicom",
}
STDIN = "-"


def format_of(path: Path, forced: str | None, body: bytes = b"") -> str | None:
    """``--format``, else the file's extension; ``None`` lets ingest sniff the format."""
    if forced:
        return forced
    name = path.name.lower()
    found = next((fmt for ext, fmt in EXTENSIONS.items() if name.endswith(ext)), None)
    if found == "json" and b'"resourceType"' in body[:4096]:
        return "fhir"
    return found


def expand(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        else:
            files.append(path)
    return files


def document_headers(hospital: str, fmt: str | None, message_id: str | None = None) -> list[tuple[str, bytes]]:
    headers = {
        CE_SPECVERSION: "1.0",
        CE_ID: message_id or str(uuid.uuid4()),
        CE_SOURCE: hospital,
        CE_TYPE: "org.aimass.document.submitted.v1",
        CE_TIME: rfc3339_now(),
    }
    if fmt:
        headers[CONTENT_TYPE] = CONTENT_TYPES[fmt]
    return [(k, v.encode()) for k, v in headers.items()]


def read_documents(paths: list[str], forced: str | None) -> tuple[list[tuple[str, bytes, str | None]], int]:
    """(name, bytes, format) of every document, and how many could not be read."""
    documents: list[tuple[str, bytes, str | None]] = []
    failed = 0
    for item in paths:
        if item == STDIN:
            body = sys.stdin.buffer.read()
            documents.append(("<stdin>", body, format_of(Path("stdin"), forced, body)))
            continue
        for path in expand([item]):
            try:
                body = path.read_bytes()
            except OSError as error:
                print(f"aimass publish: cannot read {path}: {error.strerror}", file=sys.stderr)
                failed += 1
                continue
            documents.append((str(path), body, format_of(path, forced, body)))
    return documents, failed


async def publish_files(
    paths: list[str], hospital: str, forced: str | None, settings: Settings, *, as_hospital: bool = False
) -> int:
    """As the operator to the shared ``ingest.raw`` (the platform acting for a hospital, e.g. loading a backlog), or
    ``as_hospital`` to the hospital's own input topic, the one its principal may write (docs/security.md)."""
    try:
        topic = (
            hospital_input_topic(hospital, settings.topic_prefix)
            if as_hospital
            else topic_name(Topic.INGEST_RAW, settings.topic_prefix)
        )
    except ValueError as error:
        print(f"aimass publish: {error}", file=sys.stderr)
        return 2
    documents, failed = read_documents(paths, forced)
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
