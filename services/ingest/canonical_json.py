"""``application/json``: the project's own canonical record, validated against ``IncomingRecord``."""

from __future__ import annotations

import json

from pydantic import ValidationError

from shared.errors import RejectedInput, describe_validation_error
from shared.schemas import IncomingRecord

MAX_JSON_DEPTH = 32


def _depth(value: object, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_canonical_json(document: bytes) -> list[IncomingRecord]:
    """One record, or a JSON array of records."""
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RejectedInput(f"JSON: not valid UTF-8 at byte {error.start}", "encoding") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise RejectedInput(f"JSON: {error.msg} at line {error.lineno} column {error.colno}", "malformed") from None
    except RecursionError:
        raise RejectedInput(f"JSON: nested deeper than {MAX_JSON_DEPTH} levels", "malformed") from None
    if _depth(payload, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise RejectedInput(f"JSON: nested deeper than {MAX_JSON_DEPTH} levels", "malformed")
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
