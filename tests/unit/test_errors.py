import pytest
from pydantic import BaseModel, Field, ValidationError

from shared.errors import RejectedInput, describe_validation_error, parse_event


class Sample(BaseModel):
    name: str
    age: int = Field(ge=0)


def test_validation_reason_names_fields_but_not_values() -> None:
    with pytest.raises(RejectedInput) as caught:
        parse_event(b'{"name": "Jane Roe", "age": -3}', Sample, "aimass.records.ingested")
    reason = caught.value.reason
    assert "age" in reason and "greater than or equal to 0" in reason
    assert "aimass.records.ingested" in reason
    assert "-3" not in reason and "Jane" not in reason
    assert caught.value.reason_class == "schema"


def test_invalid_json_is_its_own_reason_class() -> None:
    with pytest.raises(RejectedInput) as caught:
        parse_event(b"{not json", Sample, "t")
    assert caught.value.reason_class == "malformed"


def test_nested_locations_read_like_paths() -> None:
    class Outer(BaseModel):
        items: list[Sample]

    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"items": [{"name": "a", "age": 1}, {"name": "b"}]})
    assert describe_validation_error(caught.value) == "items[1].age: Field required"
