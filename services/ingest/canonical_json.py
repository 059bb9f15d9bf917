"""``application/json``: the project's own canonical record (or an array of them), validated against
``IncomingRecord``. An array is accepted or rejected as a whole: it is one submission of the hospital's own making."""

from __future__ import annotations

from pydantic import ValidationError

from services.ingest.jsontext import load_json
from services.ingest.parsed import ParseContext, ParsedDocument, ParsedRecord
from shared.errors import RejectedInput, describe_validation_error
from shared.schemas import IncomingRecord


def parse_canonical_json(document: bytes) -> list[IncomingRecord]:
    """One record, or a JSON array of records."""
    payload = load_json(document, "JSON")
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise RejectedInput("JSON: empty array, no record", "schema")
    records = []
    for index, item in enumerate(items):
        prefix = f"record[{index}]." if isinstance(payload, list) else "record."
        if not isinstance(item, dict):
            raise RejectedInput(f"JSON {prefix.rstrip('.')}: expected an object", "schema")
        try:
            records.append(IncomingRecord.model_validate(item))
        except ValidationError as error:
            raise RejectedInput(f"JSON {describe_validation_error(error, prefix)}", "schema") from None
    return records


def parse_json_document(document: bytes, _: ParseContext) -> ParsedDocument:
    return ParsedDocument(records=[ParsedRecord(r, i) for i, r in enumerate(parse_canonical_json(document))])
