"""Which parser reads a document, and the checks every document passes first (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from services.ingest.canonical_json import parse_canonical_json
from services.ingest.pseudonym import Pseudonymizer
from services.ingest.records import Envelope, to_canonical
from shared.errors import RejectedInput
from shared.schemas import CanonicalRecord, IncomingRecord
from shared.schemas.records import SourceFormat
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE, header

Parser = Callable[[bytes], list[IncomingRecord]]

PARSERS: dict[str, tuple[SourceFormat, Parser]] = {
    "application/json": ("json", parse_canonical_json),
}


def sniff_content_type(document: bytes) -> str | None:
    head = document[:64].lstrip()
    if head.startswith((b"{", b"[")):
        return "application/json"
    return None


def envelope_of(headers: Mapping[str, str], fallback_id: str, received_at: datetime) -> Envelope:
    hospital = header(headers, CE_SOURCE)
    if hospital is None:
        raise RejectedInput("missing header ce_source: every document must name the hospital that sent it",
                            "missing_source")
    return Envelope(hospital=hospital.strip(), message_id=header(headers, CE_ID) or fallback_id,
                    received_at=received_at)


def read_document(
    document: bytes,
    headers: Mapping[str, str],
    envelope: Envelope,
    pseudonymize: Pseudonymizer,
    max_bytes: int,
) -> list[CanonicalRecord]:
    """Every canonical record in ``document``, or ``RejectedInput`` saying why there are none."""
    if len(document) > max_bytes:
        raise RejectedInput(f"document of {len(document)} bytes exceeds the limit of {max_bytes} bytes "
                            "(AIMASS_MAX_MESSAGE_BYTES)", "oversized")
    if not document.strip():
        raise RejectedInput("empty document", "empty")
    declared = header(headers, CONTENT_TYPE)
    content_type = (declared or "").split(";")[0].strip().lower() or sniff_content_type(document)
    if content_type is None:
        raise RejectedInput("no content-type header and the format could not be recognised; set content-type "
                            f"to one of: {', '.join(sorted(PARSERS))}", "unknown_format")
    if content_type not in PARSERS:
        raise RejectedInput(f"unsupported content-type {content_type!r}; supported: {', '.join(sorted(PARSERS))}",
                            "unknown_format")
    source_format, parse = PARSERS[content_type]
    return [
        to_canonical(incoming, envelope, source_format, pseudonymize, index)
        for index, incoming in enumerate(parse(document))
    ]
