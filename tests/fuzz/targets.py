"""What the fuzz run calls: the pure functions the services' handlers call on every message, with the checks a
consumer downstream relies on. Each returns normally or raises ``RejectedInput``; anything else is a crash."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.clean.cleaning import Cleaner
from services.clean.code_files import load_code_book
from services.clean.fingerprint import content_fingerprint
from services.ingest.documents import PARSERS, ReadOptions, content_type_of, envelope_of, format_of, read_document
from services.ingest.hospitals import load_tables
from services.ingest.libraries import quiet_parser_libraries
from services.ingest.pseudonym import Pseudonymizer
from shared.errors import RejectedInput, parse_event
from shared.events import one_line
from shared.schemas import CanonicalRecord, CleanRecord
from shared.settings import PROJECT_ROOT
from shared.tasks import load_tasks
from shared.topics import decode_headers

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MAX_BYTES = 2_000_000  # the default AIMASS_MAX_MESSAGE_BYTES
quiet_parser_libraries()  # as ingest's wiring does: hl7 and pydicom would log every value they stumble on
OPTIONS = ReadOptions(
    tables=load_tables(PROJECT_ROOT / "deploy" / "hospitals"),
    data_root=Path("/tmp/aimass-fuzz-data"),
    claim_check_bytes=16_384,
)
PSEUDONYMIZE = Pseudonymizer(b"fuzz-key-0123456789abcdef0123456")
CLEANER = Cleaner(load_tasks(), load_code_book(PROJECT_ROOT / "deploy" / "codes"))


def _checked_rejection(rejected: RejectedInput) -> RejectedInput:
    reason = one_line(rejected.reason)  # what the aimass-error header will carry
    assert reason and "\n" not in reason and "\r" not in reason and rejected.reason_class, "a reason a person can read"
    return rejected


def ingest(document: bytes, headers: Mapping[str, str]) -> None:
    """ingest's handler, without the broker: envelope, format, parse; or what its reject path computes."""
    try:
        envelope = envelope_of(headers, "fuzz.ingest.raw/0/0", NOW)
        ingested = read_document(document, headers, envelope, PSEUDONYMIZE, MAX_BYTES, OPTIONS)
    except RejectedInput as rejected:
        format_of(headers, document), content_type_of(headers, document)  # the audit event of a rejection
        raise _checked_rejection(rejected) from None
    assert ingested.records, "a document that is not rejected has records"
    for record in ingested.records:
        CanonicalRecord.model_validate_json(record.model_dump_json())
        assert record.patient != "" and record.hospital == envelope.hospital
    for part in ingested.rejected:
        _checked_rejection(RejectedInput(part.reason, part.reason_class))
        assert part.document and part.content_type in PARSERS
    for attachment in ingested.attachments:
        assert attachment.path.resolve().is_relative_to(OPTIONS.data_root.resolve()), "claim check in the data dir"


def ingest_raw_headers(document: bytes, raw_headers: Sequence[tuple[str, bytes | None]]) -> None:
    """Headers as bytes off the wire, decoded the way the handler decodes them."""
    ingest(document, decode_headers(raw_headers))


def clean(value: bytes) -> None:
    """clean's handler, without the broker: parse the ``records.ingested`` value, fingerprint it, clean it."""
    try:
        record = parse_event(value, CanonicalRecord, "fuzz.records.ingested")
    except RejectedInput as rejected:
        raise _checked_rejection(rejected) from None
    content_fingerprint(record)
    cleaned = CLEANER.clean(record)
    CleanRecord.model_validate_json(cleaned.record.model_dump_json())
