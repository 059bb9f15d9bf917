"""Reading documents the way the ingest service does, without a broker."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from services.ingest.documents import Ingested, ReadOptions, envelope_of, read_document
from services.ingest.hospitals import load_tables
from services.ingest.pseudonym import Pseudonymizer
from shared.schemas import CanonicalRecord
from shared.settings import PROJECT_ROOT

_When = TypeVar("_When", bound=datetime)

KEY = b"unit-test-key-0123456789abcdef"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "ingest"
TABLES = load_tables(PROJECT_ROOT / "deploy" / "hospitals")
pseudonymize = Pseudonymizer(KEY)


def read(
    body: bytes,
    hospital: str,
    content_type: str | None = None,
    message_id: str = "m-1",
    data_root: Path = Path("/tmp/aimass-unit-data"),
    claim_check_bytes: int = 16_384,
    free_text_codes: Collection[tuple[str, str]] = (),
) -> Ingested:
    headers = {"ce_source": hospital, "ce_id": message_id}
    if content_type:
        headers["content-type"] = content_type
    options = ReadOptions(
        tables=TABLES,
        data_root=data_root,
        claim_check_bytes=claim_check_bytes,
        free_text_codes=frozenset(free_text_codes),
    )
    return read_document(body, headers, envelope_of(headers, "t/0/0", NOW), pseudonymize, 10_000_000, options)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def by_code(record) -> dict:
    return {o.code.code: o for o in record.observations}


def unshifted(record: CanonicalRecord, when: _When) -> _When:
    """A time of ``record`` as the hospital sent it: ingest moved it by the patient's offset (dates.py)."""
    return when - timedelta(days=pseudonymize.date_shift_days(record.patient))
