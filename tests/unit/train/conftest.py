"""Real data for train's unit tests: UCI heart disease through ingest's reader, WDBC as canonical records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.cli.scenario.heart import records_by_hospital
from services.cli.scenario.records import dataset_records
from services.ingest.documents import envelope_of, read_document
from services.ingest.pseudonym import Pseudonymizer
from services.train.dataset import Dataset, Row, assemble
from shared.tasks import TaskSpec, feature_vector, label_of, load_tasks


@pytest.fixture(scope="session")
def tasks() -> dict[str, TaskSpec]:
    return load_tasks()


@pytest.fixture(scope="session")
def heart_data(tasks: dict[str, TaskSpec]) -> Dataset:
    task = tasks["heart_disease"]
    pseudonymize = Pseudonymizer(b"unit-test-key-0123456789abcdef")
    when = datetime(2026, 1, 5, tzinfo=UTC)
    rows = []
    for hospital, documents in records_by_hospital().items():
        for index, document in enumerate(documents):
            headers = {"ce_source": hospital, "content-type": "application/json", "ce_id": f"{hospital}-{index}"}
            for record in read_document(
                json.dumps(document).encode(), headers, envelope_of(headers, "unused", when), pseudonymize, 10**6
            ):
                rows.append(
                    Row(record.record_id, record.hospital, feature_vector(record, task), label_of(record, task))
                )
    return assemble(task.feature_names, rows)


@pytest.fixture(scope="session")
def wdbc_data(tasks: dict[str, TaskSpec]) -> Dataset:
    task = tasks["breast_cancer"]
    return assemble(
        task.feature_names,
        [Row(r.record_id, r.hospital, feature_vector(r, task), label_of(r, task)) for r in dataset_records("wdbc")],
    )


def quick(task: TaskSpec, **search: object) -> TaskSpec:
    """The task with a smaller search, as a task file may declare it (keeps the suite cheap)."""
    return task.model_copy(update={"model": task.model.model_copy(update={"trials": 2, "max_epochs": 40, **search})})
