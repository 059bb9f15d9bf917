"""The sweeper stops promptly, even when the cancellation meant for it is swallowed by what it awaits."""

import asyncio

from services.fuse.ports import JoinKey
from services.fuse.sweeper import DeadlineSweeper
from tests.support.fakes import MemoryJoinStore
from tests.unit.fuse.test_handlers import make


class CancellationSwallowingStore(MemoryJoinStore):
    """``due`` turns a cancellation into an ordinary timeout, as a client library can when its own timeout
    expires at the moment the task is cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.swallow = True

    async def due(self, *, now: float, limit: int) -> list[JoinKey]:
        self.calls += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
            raise TimeoutError("read timed out") from None
        return []


async def test_stop_ends_the_loop_even_when_the_cancellation_is_swallowed() -> None:
    fuser, *_ = make()
    store = CancellationSwallowingStore()
    sweeper = DeadlineSweeper(store, fuser, interval=0.01)
    sweeper.start()
    await asyncio.sleep(0.1)  # a few sweeps
    assert store.calls >= 1
    stopping = asyncio.create_task(sweeper.stop())
    done, _ = await asyncio.wait({stopping}, timeout=2.0)
    store.swallow = False  # lets a loop that missed its stop end with the test
    assert stopping in done, "stop() still waiting for the sweeper"  # before the stop flag, it waited forever
    calls = store.calls
    await asyncio.sleep(0.1)
    assert store.calls == calls  # the loop is really gone


async def test_stop_is_bounded_when_the_loop_cannot_end() -> None:
    fuser, *_ = make()
    store = CancellationSwallowingStore()
    sweeper = DeadlineSweeper(store, fuser, interval=0.01, stop_grace=0.2)

    release = asyncio.Event()

    async def stuck(*, now: float, limit: int) -> list[JoinKey]:
        while not release.is_set():  # ignores every cancellation until the test lets it go
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue
        return []

    store.due = stuck  # type: ignore[method-assign]
    sweeper.start()
    loop_task = sweeper._task
    await asyncio.sleep(0.05)
    await asyncio.wait_for(sweeper.stop(), timeout=2.0)  # returns although the loop goes on
    assert loop_task is not None and not loop_task.done(), "stop() returned only because the loop ended"
    release.set()
    await asyncio.wait_for(loop_task, timeout=2.0)


async def test_stop_before_start_and_twice_is_harmless() -> None:
    fuser, *_ = make()
    store = CancellationSwallowingStore()
    store.swallow = False
    sweeper = DeadlineSweeper(store, fuser, interval=0.01)
    await sweeper.stop()
    sweeper.start()  # a stop before the start does not keep the loop from running
    await asyncio.sleep(0.1)
    assert store.calls >= 1
    await sweeper.stop()
    await sweeper.stop()
    calls = store.calls
    await asyncio.sleep(0.05)
    assert store.calls == calls  # stopped, and the second stop raised nothing
