"""The deadline sweeper: fuses the joins whose deadline passed and re-emits those whose emission lease ran out.

Runs in every replica; the store's claim lets exactly one of them emit each join.
"""

from __future__ import annotations

import asyncio
import logging

from services.fuse.handlers import Fuser
from services.fuse.store import JoinStore

log = logging.getLogger("aimass.fuse.sweeper")

SWEEP_INTERVAL_SECONDS = 0.2
SWEEP_BATCH = 200


class DeadlineSweeper:
    def __init__(self, store: JoinStore, fuser: Fuser, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        self.store = store
        self.fuser = fuser
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """Emit every due join this replica wins; the number emitted."""
        emitted = 0
        for key in await self.store.due(now=self.fuser.clock(), limit=SWEEP_BATCH):
            try:
                emitted += await self.fuser.emit(key)
            except Exception:
                # The claim's lease makes the join due again; a broker or Redis outage must not stop the loop.
                log.exception("emitting a due join failed; it is retried when its lease runs out",
                              extra={"task": key.task})
        return emitted

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("deadline sweep failed; retrying")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="fuse-deadline-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
