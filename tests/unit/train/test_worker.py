"""The training worker process: a trainer that dies is replaced; one that dies again ends the request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.train.adapters.worker import ProcessTrainingWorker
from services.train.failures import TrainerDied


def dies_unless_marked(tasks_dir: Path, store_root: Path, registry: Path, task: str, site: str | None) -> list[str]:
    """Runs in the spawned worker: dies like a process killed for memory, the first time only for 'once'."""
    marker = store_root / "died-once"
    if task == "once" and not marker.exists():
        marker.touch()
        os._exit(137)
    if task in ("once", "never"):
        return []
    os._exit(137)


class DyingWorker(ProcessTrainingWorker):
    job = staticmethod(dies_unless_marked)


async def test_a_trainer_that_dies_once_is_replaced_and_the_run_completes(tmp_path: Path) -> None:
    worker = DyingWorker(tmp_path, tmp_path, tmp_path)
    try:
        assert await worker.train("once", None) == []
        assert (tmp_path / "died-once").exists()  # it did die on the first try
        assert await worker.train("never", None) == []  # the replacement pool keeps serving
        assert not worker.busy
    finally:
        worker.close()


async def test_a_trainer_that_dies_twice_ends_the_request_with_what_to_do(tmp_path: Path) -> None:
    worker = DyingWorker(tmp_path, tmp_path, tmp_path)
    with pytest.raises(TrainerDied) as died:
        await worker.train("always", "hungary")
    assert "always/hungary" in str(died.value) and "memory" in str(died.value) and "replay" in str(died.value)
    assert not worker.busy
    assert await worker.train("never", None) == []  # and the next request gets a fresh process
    worker.close()
