"""Shipped data sets as canonical records, for training without the pipeline (``aimass train --from-dataset``).

The documents are public research data: the pseudonym here is a plain hash, not ingest's keyed one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shared.schemas import CanonicalRecord, Demographics, IncomingRecord
from shared.topics import derived_event_id

DATASETS = ("heart", "wdbc")


def canonical(document: dict[str, Any], hospital: str) -> CanonicalRecord:
    incoming = IncomingRecord.model_validate(document)
    patient = hashlib.sha256(f"{hospital}\x1f{incoming.patient_id}".encode()).hexdigest()[:32]
    age = None if incoming.age_years is None else min(incoming.age_years, 90)
    return CanonicalRecord(
        record_id=derived_event_id("dataset", f"{hospital}/{incoming.patient_id}"),
        patient=patient,
        hospital=hospital,
        recorded_at=incoming.recorded_at,
        received_at=incoming.recorded_at or datetime.now(UTC),
        source_format="json",
        demographics=Demographics(age_years=age, sex=incoming.sex),
        observations=incoming.observations,
        conditions=incoming.conditions,
    )


def dataset_records(name: str) -> Iterable[CanonicalRecord]:
    if name == "heart":
        from services.cli.scenario.heart import records_by_hospital

        for hospital, docs in records_by_hospital().items():
            yield from (canonical(doc, hospital) for doc in docs)
    elif name == "wdbc":
        from services.cli.scenario.wdbc import HOSPITAL, documents

        yield from (canonical(doc, HOSPITAL) for doc in documents())
    else:
        raise ValueError(f"unknown data set {name!r}; shipped: {', '.join(DATASETS)}")
