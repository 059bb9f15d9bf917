"""What one training job does, from the store to the registry. Runs in the worker process or in the CLI."""

from __future__ import annotations

from pathlib import Path

from services.train.adapters.registry_writer import RegistryWriter
from services.train.adapters.store import ParquetTrainingStore
from services.train.dataset import POOLED, Dataset
from services.train.failures import NotTrainable
from services.train.release import release
from services.train.task_catalog import TaskCatalog
from services.train.training import Progress, train_model
from shared.schemas.models import ModelCard
from shared.tasks import TaskSpec


def train_and_release(
    task: TaskSpec, data: Dataset, site: str | None, registry: Path, progress: Progress | None = None
) -> list[ModelCard]:
    trained = train_model(task, data, site or POOLED, progress)
    return release(trained, RegistryWriter(registry))


def train_from_store(tasks_dir: Path, store_root: Path, registry: Path, task_name: str, site: str | None) -> list[str]:
    """The worker's entry point: arguments and result are plain (picklable) values; cards come back as JSON."""
    task = TaskCatalog(tasks_dir).get(task_name)
    if task is None:
        raise NotTrainable(f"no task file defines task {task_name!r} in {tasks_dir}")
    data = ParquetTrainingStore(store_root).dataset(task.name, task.feature_names)
    return [card.model_dump_json() for card in train_and_release(task, data, site, registry)]
