"""Training in a separate process, so the service's event loop (consumers' heartbeats, HTTP probes) stays free.

One worker, spawned (not forked: the parent runs an event loop and Kafka clients), reused across runs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from shared.schemas.models import ModelCard


def _train_from_store(tasks_dir: Path, store_root: Path, registry: Path, task: str, site: str | None) -> list[str]:
    # Imported here: torch loads in the worker process only, not in the service.
    from services.train.jobs import train_from_store

    return train_from_store(tasks_dir, store_root, registry, task, site)


class ProcessTrainingWorker:
    def __init__(self, tasks_dir: Path, store_root: Path, registry: Path) -> None:
        self.tasks_dir, self.store_root, self.registry = tasks_dir, store_root, registry
        self._pool: ProcessPoolExecutor | None = None
        self.busy = False

    async def train(self, task: str, site: str | None) -> list[ModelCard]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.busy = True
        try:
            cards = await asyncio.get_running_loop().run_in_executor(
                self._pool, _train_from_store, self.tasks_dir, self.store_root, self.registry, task, site)
        finally:
            self.busy = False
        return [ModelCard.model_validate_json(card) for card in cards]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
