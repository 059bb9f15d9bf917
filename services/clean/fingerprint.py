"""The content fingerprint: what makes two records the same result, whatever ids they came under (pure).

Left out on purpose: the record id and ``received_at`` (they change when a hospital re-sends), the source format,
and display texts (free text that differs between a hospital's systems for the same code).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from shared.schemas.records import CanonicalRecord, Code


def _code(code: Code | None) -> list[str] | None:
    return None if code is None else [code.system, code.code]


def _sorted(items: Iterable[list[Any]]) -> list[str]:
    """Order-independent (a re-send may list results in another order), and total even where values are None."""
    return sorted(json.dumps(item, default=str) for item in items)


def _content(record: CanonicalRecord) -> dict[str, Any]:
    observations = _sorted(
        [_code(o.code), o.value, _code(o.value_code), o.value_text, o.unit, o.time and o.time.isoformat()]
        for o in record.observations
    )
    conditions = _sorted([_code(c.code), c.status, c.onset and c.onset.isoformat()] for c in record.conditions)
    imaging = _sorted([i.study_uid, i.series_uid] for i in record.imaging)
    return {
        "hospital": record.hospital,
        "patient": record.patient,
        "encounter": record.encounter,
        "recorded_at": record.recorded_at and record.recorded_at.isoformat(),
        "demographics": [record.demographics.age_years, record.demographics.sex],
        "observations": observations,
        "conditions": conditions,
        "imaging": imaging,
    }


def content_fingerprint(record: CanonicalRecord) -> str:
    text = json.dumps(_content(record), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
