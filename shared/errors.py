"""The one exception domain code raises for input it cannot accept; handlers turn it into a dead letter."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class RejectedInput(Exception):
    """Input that can never be processed as it is. ``reason`` is for a person; ``reason_class`` for metrics.

    The reason names what is wrong and where ("FHIR Observation[3].valueQuantity: field required"), never
    the offending values: those can be patient data.
    """

    def __init__(self, reason: str, reason_class: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_class = reason_class


def describe_validation_error(error: object, prefix: str = "") -> str:
    """A pydantic ``ValidationError`` as ``loc: msg`` pairs, without the input values pydantic would echo."""
    parts = []
    for item in getattr(error, "errors", lambda **_: [])(include_input=False, include_url=False)[:5]:
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in item.get("loc", ()))
        loc = loc.replace(".[", "[")
        parts.append(f"{prefix}{loc}: {item.get('msg', 'invalid')}" if loc else f"{prefix}{item.get('msg')}")
    return "; ".join(parts) or f"{prefix}invalid"


def parse_event(value: bytes | None, schema: type[ModelT], topic: str) -> ModelT:
    """An event value validated against its schema, or ``RejectedInput`` naming the topic and the fields."""
    try:
        return schema.model_validate_json(value or b"")
    except ValidationError as error:
        if any(e.get("type") == "json_invalid" for e in error.errors(include_input=False)):
            raise RejectedInput(f"{topic} value is not valid JSON", "malformed") from None
        raise RejectedInput(
            f"{topic} value is not a valid {schema.__name__}: {describe_validation_error(error)}", "schema"
        ) from None
