"""Which parser reads a document, and the checks every document passes first (pure)."""

from __future__ import annotations

import contextlib
import gc
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from services.ingest.canonical_json import parse_json_document
from services.ingest.csv_xlsx import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE, parse_csv, parse_xlsx
from services.ingest.dates import UnshiftableDate
from services.ingest.dicom import DICOM_CONTENT_TYPE, parse_dicom
from services.ingest.fhir import FHIR_CONTENT_TYPE, parse_fhir
from services.ingest.free_text import strip_free_text
from services.ingest.hl7v2 import HL7_CONTENT_TYPE, parse_hl7v2
from services.ingest.parsed import Attachment, ParseContext, ParsedDocument, RejectedPart
from services.ingest.pseudonym import Pseudonymizer
from services.ingest.records import Envelope, to_canonical
from services.ingest.table_mapping import TableMapping
from shared.errors import RejectedInput, describe_validation_error
from shared.schemas import CanonicalRecord
from shared.schemas.records import SourceFormat
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE, header

Parser = Callable[[bytes, ParseContext], ParsedDocument]
JSON_CONTENT_TYPE = "application/json"
MAX_HOSPITAL_ID = 128
# A hospital id names files, metric labels and pseudonym keys: plain ASCII, so that a header cannot carry a path
# ("../"), a line break, a control character or bytes that were not UTF-8 (decoded as U+FFFD) into any of them.
HOSPITAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")

PARSERS: dict[str, tuple[SourceFormat, Parser]] = {
    FHIR_CONTENT_TYPE: ("fhir", parse_fhir),
    HL7_CONTENT_TYPE: ("hl7v2", parse_hl7v2),
    CSV_CONTENT_TYPE: ("csv", parse_csv),
    XLSX_CONTENT_TYPE: ("xlsx", parse_xlsx),
    JSON_CONTENT_TYPE: ("json", parse_json_document),
    DICOM_CONTENT_TYPE: ("dicom", parse_dicom),
}
ALIASES = {
    "application/json+fhir": FHIR_CONTENT_TYPE,
    "application/hl7-v2": HL7_CONTENT_TYPE,
    "x-application/hl7-v2+er7; charset=utf-8": HL7_CONTENT_TYPE,
}


@dataclass(frozen=True)
class ReadOptions:
    """What read_document needs beyond the bytes: mapping tables and where claim checks will live."""

    tables: Mapping[str, TableMapping] = field(default_factory=dict)
    data_root: Path = Path("var/data")
    claim_check_bytes: int = 16_384
    free_text_codes: frozenset[tuple[str, str]] = frozenset()  # (system, code) whose free text the tasks allowlist


@dataclass(frozen=True)
class Ingested:
    """The outcome of one document: its records, the parts rejected on their own, and files to store first.

    Iterating yields the records, so ``for record in read_document(...)`` reads as before parts existed.
    """

    records: list[CanonicalRecord]
    source_format: SourceFormat
    content_type: str
    rejected: list[RejectedPart] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    free_text_dropped: int = 0  # free-text values and reference ranges removed (free_text.py): counted, never shown

    def __iter__(self) -> Iterator[CanonicalRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> CanonicalRecord:
        return self.records[index]


def sniff_content_type(document: bytes) -> str | None:
    head = document[:512].lstrip(b"\xef\xbb\xbf \t\r\n\x0b")
    if document[128:132] == b"DICM":
        return DICOM_CONTENT_TYPE
    if head.startswith(b"PK\x03\x04"):
        return XLSX_CONTENT_TYPE
    if head.startswith(b"MSH"):
        return HL7_CONTENT_TYPE
    if head.startswith((b"{", b"[")):
        return FHIR_CONTENT_TYPE if b'"resourceType"' in document[:4096] else JSON_CONTENT_TYPE
    first_line, _, rest = document[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").partition(b"\n")
    if rest and first_line.count(b",") >= 2 and first_line.rstrip(b"\r").decode("utf-8", "replace").isprintable():
        return CSV_CONTENT_TYPE  # a header row of at least three columns
    return None


def content_type_of(headers: Mapping[str, str], document: bytes) -> str | None:
    declared = (header(headers, CONTENT_TYPE) or "").split(";")[0].strip().lower()
    return ALIASES.get(declared, declared) or sniff_content_type(document)


def format_of(headers: Mapping[str, str], document: bytes) -> SourceFormat | None:
    """The format a document would be parsed as, for metrics and audit; ``None`` when unknown."""
    content_type = content_type_of(headers, document)
    return PARSERS[content_type][0] if content_type in PARSERS else None


def bound_to_sender(headers: Mapping[str, str], sender: str | None) -> Mapping[str, str]:
    """The headers of a document that arrived on ``sender``'s own input topic (``shared.topics.hospital_input_topic``,
    which only that hospital's principal may write): its ``ce_source`` must be the sender, and is the sender when
    absent. A document from the shared ``ingest.raw`` (``sender`` None, written by the platform's own principals)
    is taken as it names itself."""
    if sender is None:
        return headers
    claimed = (header(headers, CE_SOURCE) or "").strip()
    if not claimed:
        return {**headers, CE_SOURCE: sender}
    if claimed != sender:
        raise RejectedInput(
            f"header ce_source names another hospital than the input topic of {sender}: a hospital publishes as "
            "itself only (its own topic, its own Kafka login)",
            "wrong_source",
        )
    return headers


def envelope_of(headers: Mapping[str, str], fallback_id: str, received_at: datetime) -> Envelope:
    hospital = (header(headers, CE_SOURCE) or "").strip()
    if not hospital:
        raise RejectedInput(
            "missing header ce_source: every document must name the hospital that sent it", "missing_source"
        )
    if len(hospital) > MAX_HOSPITAL_ID or not HOSPITAL_ID.fullmatch(hospital) or ".." in hospital:
        raise RejectedInput(
            f"header ce_source: a hospital id is 1 to {MAX_HOSPITAL_ID} ASCII letters, digits, '.', "
            "'_', ':' or '-', starting with a letter or digit, without '..'",
            "missing_source",
        )
    return Envelope(hospital=hospital, message_id=header(headers, CE_ID) or fallback_id, received_at=received_at)


def _parse(parse: Parser, document: bytes, context: ParseContext, source_format: str) -> ParsedDocument:
    """The parser's result; whatever else a third-party parser raises becomes a reason, never a crash: an
    exception here would make the consumer retry the same poison message forever."""
    label = source_format.upper() if source_format != "hl7v2" else "HL7"
    try:
        return parse(document, context)
    except RejectedInput:
        raise
    except ValidationError as error:
        raise RejectedInput(f"{label} {describe_validation_error(error)}", "schema") from None
    except (RecursionError, MemoryError):
        raise RejectedInput(f"{label}: too deeply nested or too large to parse", "malformed") from None
    except Exception as error:
        raise RejectedInput(f"{label}: the parser failed ({type(error).__name__})", "malformed") from None


_collection_pauses = 0
_collection_was_enabled = True
_collection_lock = threading.Lock()


@contextlib.contextmanager
def _cyclic_collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while one document is read (reference counting still frees what it drops).

    A document of thousands of rows keeps hundreds of thousands of small objects alive until its records are made,
    and each full collection walks all of them: a 2 MB CSV took 2.6 s with collections and 0.8 s without. The
    document's size is bounded (``max_bytes``), so the pause is too. A count, because documents are also read in
    threads: the collector comes back when the last reader is done."""
    global _collection_pauses, _collection_was_enabled
    with _collection_lock:
        if _collection_pauses == 0:
            _collection_was_enabled = gc.isenabled()
        _collection_pauses += 1
        gc.disable()
    try:
        yield
    finally:
        with _collection_lock:
            _collection_pauses -= 1
            if _collection_pauses == 0 and _collection_was_enabled:
                gc.enable()


def read_document(
    document: bytes,
    headers: Mapping[str, str],
    envelope: Envelope,
    pseudonymize: Pseudonymizer,
    max_bytes: int,
    options: ReadOptions | None = None,
) -> Ingested:
    """Every canonical record in ``document`` (and the parts rejected alone), or ``RejectedInput`` saying why
    there are none."""
    if len(document) > max_bytes:
        raise RejectedInput(
            f"document of {len(document)} bytes exceeds the limit of {max_bytes} bytes (AIMASS_MAX_MESSAGE_BYTES)",
            "oversized",
        )
    if not document.strip():
        raise RejectedInput("empty document", "empty")
    content_type = content_type_of(headers, document)
    if content_type is None:
        raise RejectedInput(
            "no content-type header and the format could not be recognised; set content-type "
            f"to one of: {', '.join(sorted(PARSERS))}",
            "unknown_format",
        )
    if content_type not in PARSERS:
        raise RejectedInput(
            f"unsupported content-type {content_type[:80]!r}; supported: {', '.join(sorted(PARSERS))}", "unknown_format"
        )
    options = options or ReadOptions()
    source_format, parse = PARSERS[content_type]
    context = ParseContext(
        envelope.hospital, pseudonymize, options.tables, options.data_root, options.claim_check_bytes
    )
    with _cyclic_collection_paused():
        parsed = _parse(parse, document, context, source_format)
        records, dropped = [], 0
        try:
            for part in parsed.records:
                stripped = strip_free_text(part.incoming.observations, options.free_text_codes)
                dropped += stripped.dropped
                incoming = part.incoming.model_copy(update={"observations": stripped.observations})
                records.append(to_canonical(incoming, envelope, source_format, pseudonymize, part.key, part.imaging))
        except ValidationError as error:
            raise RejectedInput(f"{source_format}: {describe_validation_error(error)}", "schema") from None
        except UnshiftableDate as error:
            raise RejectedInput(f"{source_format}: {error}", "schema") from None
    return Ingested(records, source_format, content_type, parsed.rejected, parsed.attachments, dropped)
