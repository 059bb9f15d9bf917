"""The background task the lag exporter and the producer watch run in."""

from __future__ import annotations

import asyncio

from shared.background import BackgroundTask


async def test_started_once_cancelled_by_stop_and_stop_is_idempotent() -> None:
    runs, cancelled = [], []

    async def loop() -> None:
        runs.append(1)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    task = BackgroundTask("probe", loop)
    await task.stop()  # before start: nothing to do
    task.start()
    task.start()
    await asyncio.sleep(0.01)
    assert runs == [1]
    await asyncio.wait_for(task.stop(), 1.0)
    await task.stop()
    assert cancelled == [1]
    task.start()  # can run again after a stop
    await asyncio.sleep(0.01)
    assert runs == [1, 1]
    await task.stop()
