"""Writes the JSON Schemas of ingest's messages from the pydantic models: ``python docs/schemas/generate.py``.

tests/unit/ingest/test_schemas.py fails when a file here no longer matches its model (run this script, commit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from shared.schemas import CanonicalRecord, IncomingRecord  # noqa: E402
from shared.schemas.audit import AuditEvent  # noqa: E402

SCHEMAS = {
    "incoming-record.schema.json": (
        IncomingRecord,
        "application/json on ingest.raw: the canonical record a hospital may send, or a JSON array of them",
    ),
    "canonical-record.schema.json": (CanonicalRecord, "records.ingested: one pseudonymized record per encounter"),
    "audit-event.schema.json": (AuditEvent, "audit: one event per document ingest handled"),
}


def rendered() -> dict[str, str]:
    out = {}
    for name, (model, description) in SCHEMAS.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://aimass.example/schemas/{name}",
            **model.model_json_schema(),
        }
        schema["description"] = description
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main() -> None:
    for name, text in rendered().items():
        (HERE / name).write_text(text)
        print(f"wrote docs/schemas/{name}")


if __name__ == "__main__":
    main()
