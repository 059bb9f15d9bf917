"""JSON text as hospitals send it: UTF-8, bounded nesting, no NaN or Infinity (pure)."""

from __future__ import annotations

import json
from typing import Any

from shared.errors import RejectedInput

MAX_JSON_DEPTH = 32


def _depth(value: object, limit: int) -> int:
    """How deep the value nests (a scalar in a list at the top is at depth 2), up to just past ``limit``; only
    containers are walked, since they are few beside the scalars of a large document."""
    if not isinstance(value, (dict, list)):
        return 1
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    deepest = 1
    while stack:
        container, depth = stack.pop()
        for child in container.values() if isinstance(container, dict) else container:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def load_json(document: bytes, label: str) -> Any:
    """The parsed JSON, or ``RejectedInput`` whose reason starts with ``label`` (e.g. "FHIR", "JSON")."""
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RejectedInput(f"{label}: not valid UTF-8 at byte {error.start}", "encoding") from None
    try:
        payload = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise RejectedInput(f"{label}: {error.msg} at line {error.lineno} column {error.colno}", "malformed") from None
    except ValueError:
        raise RejectedInput(f"{label}: NaN and Infinity are not JSON numbers", "malformed") from None
    except RecursionError:
        raise RejectedInput(f"{label}: nested deeper than {MAX_JSON_DEPTH} levels", "malformed") from None
    if _depth(payload, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise RejectedInput(f"{label}: nested deeper than {MAX_JSON_DEPTH} levels", "malformed")
    return payload
