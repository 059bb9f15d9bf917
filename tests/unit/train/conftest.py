"""Real data for train's unit tests: UCI heart disease through ingest's reader, WDBC as canonical records."""

from __future__ import annotations

import pytest

from services.cli.scenario.records import dataset_records
from services.train.dataset import Dataset, Row, assemble
from shared.tasks import TaskSpec, feature_vector, label_of, load_tasks
from tests.support.factories.heart import heart_dataset


@pytest.fixture(scope="session")
def tasks() -> dict[str, TaskSpec]:
    return load_tasks()


@pytest.fixture(scope="session")
def heart_data(tasks: dict[str, TaskSpec]) -> Dataset:
    return heart_dataset(tasks["heart_disease"])


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
