"""N distinct heart-disease documents from the 920 real UCI rows, each with its own ``ce_id``.

Beyond 920 the rows repeat, each copy under its own encounter id and encounter time: clean de-duplicates by content
(patient, encounter, times, values; see services/clean/fingerprint.py), so a copy must differ in content, not only in
message id, or clean would rightly drop it as a re-send.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from services.cli.scenario.heart import HOSPITALS, canonical_record, load_heart_disease
from shared.topics import derived_event_id


@dataclass(frozen=True)
class Document:
    hospital: str
    ce_id: str
    body: bytes

    @property
    def record_id(self) -> str:
        """The id ingest gives the document's only record (hospital, message id, index 0): stable on re-delivery."""
        return derived_event_id("ingest", f"{self.hospital}/{self.ce_id}", 0)


@cache
def heart_rows() -> tuple[dict[str, Any], ...]:
    return tuple(load_heart_disease().to_dict("records"))


def heart_documents(count: int, start: datetime | None = None) -> list[Document]:
    """``count`` documents, encounters a minute apart from ``start`` (default: now, so each batch is new content)."""
    rows = heart_rows()
    start = start or datetime.now(UTC).replace(microsecond=0)
    documents = []
    for position in range(count):
        row = rows[position % len(rows)]
        document = canonical_record(row, start + timedelta(minutes=position))
        if position >= len(rows):
            document["encounter_id"] = f"{document['encounter_id']}-copy{position // len(rows)}"
        documents.append(Document(HOSPITALS[row["dataset"]], str(uuid.uuid4()), json.dumps(document).encode()))
    return documents
