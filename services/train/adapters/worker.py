"""Training in a separate process, so the service's event loop (consumers' heartbeats, HTTP probes) stays free.

One worker, spawned (not forked: the parent runs an event loop and Kafka clients), reused across runs. A worker that
dies leaves its pool broken for good, so the pool is replaced and the run tried once more; a second death is
``TrainerDied``, which the handler dead-letters instead of retrying the request forever.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from services.train.failures import TrainerDied
from shared.schemas.models import ModelCard


def _train_from_store(tasks_dir: Path, store_root: Path, registry: Path, task: str, site: str | None) -> list[str]:
    # Imported here: torch loads in the worker process only, not in the service.
    from services.train.jobs import train_from_store

    return train_from_store(tasks_dir, store_root, registry, task, site)


class ProcessTrainingWorker:
    job = staticmethod(_train_from_store)  # what runs in the worker process (a module-level function: picklable)

    def __init__(self, tasks_dir: Path, store_root: Path, registry: Path) -> None:
        self.tasks_dir, self.store_root, self.registry = tasks_dir, store_root, registry
        self._pool: ProcessPoolExecutor | None = None
        self.busy = False

    async def train(self, task: str, site: str | None) -> list[ModelCard]:
        self.busy = True
        try:
            for _ in range(2):
                try:
                    cards = await self._run(task, site)
                    break
                except BrokenProcessPool:
                    self.close()
            else:
                raise TrainerDied(
                    f"the training process died twice while training {task}/{site or 'pooled'} "
                    "(killed for memory?): see the train log, give train more memory, then replay "
                    "this request"
                )
        finally:
            self.busy = False
        return [ModelCard.model_validate_json(card) for card in cards]

    async def _run(self, task: str, site: str | None) -> list[str]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.job, self.tasks_dir, self.store_root, self.registry, task, site
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
