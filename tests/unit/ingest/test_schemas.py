"""docs/schemas/ is generated from the pydantic models; this fails when a model changed and the files did not."""

import importlib.util
import json

import pytest

from shared.settings import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT / "docs" / "schemas"


def generator():
    spec = importlib.util.spec_from_file_location("schema_generator", SCHEMAS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(generator().SCHEMAS))
def test_the_published_schema_matches_its_model(name: str) -> None:
    published = (SCHEMAS / name).read_text()
    expected = generator().rendered()[name]
    assert published == expected, f"docs/schemas/{name} drifted: run python docs/schemas/generate.py"


def test_the_incoming_record_schema_names_what_hospitals_must_send() -> None:
    schema = json.loads((SCHEMAS / "incoming-record.schema.json").read_text())
    assert schema["required"] == ["patient_id"] and schema["additionalProperties"] is False
    assert "birth_date" in schema["properties"]
    canonical = json.loads((SCHEMAS / "canonical-record.schema.json").read_text())
    assert "patient_id" not in canonical["properties"] and "birth_date" not in canonical["properties"]
