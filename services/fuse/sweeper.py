"""The deadline sweeper: fuses the joins whose deadline passed and re-emits those whose emission lease ran out.

Runs in every replica; the store's claim lets exactly one of them emit each join.

Stopping does not rely on task cancellation alone: a cancellation that a library turns into an ordinary exception
(a timeout expiring at the same moment, say) would be caught by the loop's retry and the loop would go on, so
``stop()`` would wait forever and the process would never finish its shutdown. The loop therefore also watches a
stop flag, and ``stop()`` waits a bounded time; a join it interrupts stays claimed or due in Redis and is emitted
after its lease by this or another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.fuse.handlers import Fuser
from services.fuse.ports import JoinStore

log = logging.getLogger("aimass.fuse.sweeper")

SWEEP_INTERVAL_SECONDS = 0.2
SWEEP_BATCH = 200
STOP_GRACE_SECONDS = 3.0


class DeadlineSweeper:
    def __init__(
        self,
        store: JoinStore,
        fuser: Fuser,
        interval: float = SWEEP_INTERVAL_SECONDS,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.store = store
        self.fuser = fuser
        self.interval = interval
        self.stop_grace = stop_grace
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def sweep_once(self) -> int:
        """Emit every due join this replica wins (up to ``SWEEP_BATCH`` at once); the number emitted."""
        due = await self.store.due(now=self.fuser.clock(), limit=SWEEP_BATCH)
        if not due or self._stopping.is_set():
            return 0
        try:
            return await self.fuser.emit_many(due)
        except Exception:
            # The claims' leases make the joins due again; a broker or Redis outage must not stop the loop.
            log.exception("emitting %d due joins failed; they are retried when their leases run out", len(due))
            return 0

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("deadline sweep failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="fuse-deadline-sweeper")

    async def stop(self) -> None:
        """Ask the loop to end, cancel what it awaits, and wait at most ``stop_grace`` seconds for it."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.stop_grace)
        if not done:
            log.warning(
                "the deadline sweeper did not stop within %.1f s; leaving it to the process exit", self.stop_grace
            )
        elif not task.cancelled() and task.exception() is not None:
            log.error("the deadline sweeper had failed", exc_info=task.exception())
