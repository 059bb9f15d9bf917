"""The port to the join state: what the handlers need from it, whatever holds it (Redis in production).

Every method is atomic on its own. ``claim`` is the emit decision: exactly one caller gets a join's contents, and
it holds a lease on the emission until ``emitted``; if it dies before, the lease runs out and the join becomes due
again, so a crash between claim and publish loses nothing (the re-emission carries the same event id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.fuse.join import Arrival


@dataclass(frozen=True)
class JoinKey:
    task: str
    record_id: str


@dataclass(frozen=True)
class Added:
    arrival: Arrival
    sites: frozenset[str]  # the sites that have answered so far (empty when late)


@dataclass(frozen=True)
class Claimed:
    payloads: dict[str, str]  # site -> the prediction as JSON
    first_seen: float  # epoch seconds of the join's first prediction


class JoinStore(Protocol):
    async def add(self, key: JoinKey, site: str, payload: str, *, now: float, deadline: float) -> Added:
        """Record one site's prediction unless that site already answered or the join was fused."""
        ...

    async def claim(self, key: JoinKey, *, now: float) -> Claimed | None:
        """The join's contents to the one caller that may emit it now; ``None`` to everyone else."""
        ...

    async def emitted(self, key: JoinKey) -> None:
        """The fused result was acknowledged by the broker: the join is closed for good."""
        ...

    async def due(self, *, now: float, limit: int) -> list[JoinKey]:
        """Joins whose deadline passed, and claimed joins whose emission lease ran out."""
        ...
