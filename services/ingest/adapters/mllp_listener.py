"""Adapter: one MLLP listener per hospital (python-hl7's asyncio server, ``hl7.mllp.start_hl7_server``).

A connection on a hospital's port is that hospital. Its messages are handled strictly one at a time, in the order
they arrive: read a frame, hand it to ``MllpIntake`` (which writes it and waits for the broker), write the ACKs back,
read the next. Frames are read as bytes (``readuntil`` on the library's reader) rather than parsed by the library, so
that the stream's own reader judges them and a message hl7 cannot parse is still kept, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from hl7.mllp import start_hl7_server

from services.ingest.metrics import DoorMetrics
from services.ingest.mllp_intake import MllpIntake

log = logging.getLogger("aimass.ingest")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
FRAME_SLACK = 1024  # the framing and a little more than the largest document ingest takes


class MllpListeners:
    def __init__(
        self, intake: MllpIntake, ports: Mapping[str, int], host: str, max_bytes: int, metrics: DoorMetrics
    ) -> None:
        self.intake = intake
        self.ports = dict(ports)
        self.host = host
        self.max_bytes = max_bytes
        self.metrics = metrics
        self._servers: dict[str, asyncio.Server] = {}
        self._connections: set[asyncio.Task[None]] = set()

    def listening(self) -> dict[str, int]:
        """Hospital → port of every listener that is up (``/readyz`` details)."""
        return {hospital: self.ports[hospital] for hospital in sorted(self._servers)}

    async def start(self) -> None:
        """Every hospital's port bound. One that cannot be bound (taken by another process) is logged and counted
        (``aimass_ingest_mllp_listening`` 0) while the others and the Kafka intake go on: ingest does more than this."""
        for hospital, port in sorted(self.ports.items()):
            try:
                self._servers[hospital] = await start_hl7_server(
                    partial(self._connected, hospital),
                    self.host,
                    port,
                    limit=self.max_bytes + FRAME_SLACK,
                )
            except OSError as error:
                log.error(
                    "the MLLP port of %s cannot be bound: %s",
                    hospital,
                    error.strerror or type(error).__name__,
                    extra={"event": "mllp_listen_failed", "hospital": hospital, "port": port},
                )
                self.metrics.listening(hospital, False)
                continue
            self.metrics.listening(hospital, True)
            log.info(
                "MLLP listening for %s on %s:%d",
                hospital,
                self.host,
                port,
                extra={"event": "mllp_listening", "hospital": hospital, "port": port},
            )

    async def stop(self) -> None:
        """No new connections, then the open ones ended. A message whose ACK was not written yet gets none: its
        sender re-sends it, and the re-sent copy is absorbed (same MSH-10, same ids)."""
        for server in self._servers.values():
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for hospital in self._servers:
            self.metrics.listening(hospital, False)
        self._servers.clear()

    def _connected(self, hospital: str, reader: Any, writer: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(hospital, reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, hospital: str, reader: Any, writer: Any) -> None:
        self.metrics.connected(hospital, 1)
        try:
            while True:
                frame = await self._frame(reader)
                if frame is None:
                    return
                if frame is _OVERSIZED:
                    acks = self.intake.oversized(hospital, self.max_bytes)
                else:
                    acks = await self.intake.receive(hospital, frame)
                for ack in acks:
                    writer.writeblock(ack)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # the peer went away; what it got no ACK for it sends again
        finally:
            self.metrics.connected(hospital, -1)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _frame(self, reader: Any) -> bytes | object | None:
        """The next message's bytes (0x0B ... 0x1C 0x0D, stray bytes before the start block dropped), ``None`` at
        the end of the connection, ``_OVERSIZED`` for a frame over the limit (read through its end and dropped)."""
        try:
            raw = await reader.readuntil(END_BLOCK)
        except asyncio.IncompleteReadError as eof:
            if eof.partial.strip():
                log.warning("an MLLP connection closed in the middle of a message", extra={"event": "mllp_partial"})
            return None
        except asyncio.LimitOverrunError as over:
            await self._skip_frame(reader, over.consumed)
            return _OVERSIZED
        start = raw.find(START_BLOCK)
        return raw[start + 1 : -len(END_BLOCK)] if start >= 0 else raw[: -len(END_BLOCK)]

    @staticmethod
    async def _skip_frame(reader: Any, consumed: int) -> None:
        while True:
            await reader.readexactly(consumed)  # what is buffered before the end block could begin
            try:
                await reader.readuntil(END_BLOCK)
                return
            except asyncio.LimitOverrunError as over:
                consumed = over.consumed


_OVERSIZED = object()
