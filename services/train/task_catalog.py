"""The task files of ``AIMASS_TASKS_DIR``, re-read when a file is added, changed or removed (no restart needed)."""

from __future__ import annotations

from pathlib import Path

from shared.tasks import TaskSpec, load_task


class TaskCatalog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self._tasks: dict[str, TaskSpec] = {}

    def _current_stamp(self) -> tuple[tuple[str, float], ...]:
        return tuple((p.name, p.stat().st_mtime) for p in sorted(self.directory.glob("*.yaml")))

    def tasks(self) -> dict[str, TaskSpec]:
        stamp = self._current_stamp()
        if stamp != self._stamp:
            loaded = [load_task(self.directory / name) for name, _ in stamp]
            self._tasks, self._stamp = {t.name: t for t in loaded}, stamp
        return self._tasks

    def get(self, name: str) -> TaskSpec | None:
        return self.tasks().get(name)
