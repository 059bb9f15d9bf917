"""fuse's port to the join state: what the handlers need from it, whatever holds it (Redis in production).

The handlers work a consumed batch at a time, so the port takes batches: each ``*_many`` call is one round trip to
Redis, atomic for each join in it, its items applied in order (a site repeated within one batch is a duplicate).

``claim_many`` is the emit decision: exactly one caller gets a join's contents, and it holds a lease on the
emission until ``emitted_many``. A caller whose publish fails gives its claims back (``release_many``); one that dies
before leaves them to run out, after which the joins are due again. Either way the re-emission carries the same event
id. Giving back matters: a re-delivered batch commits its offsets once the joins it completed are claimed, so until a
lease runs out the join exists only in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.fuse.join import Arrival


@dataclass(frozen=True)
class JoinKey:
    task: str
    record_id: str


@dataclass(frozen=True)
class Arriving:
    """One site's prediction for a join, as the store keeps it."""

    key: JoinKey
    site: str
    payload: str  # the prediction as JSON
    deadline: float  # epoch seconds: when the join is fused with what it has, if not complete before


@dataclass(frozen=True)
class Added:
    arrival: Arrival
    sites: frozenset[str]  # the sites that have answered so far (empty when late)


@dataclass(frozen=True)
class Claimed:
    payloads: dict[str, str]  # site -> the prediction as JSON
    first_seen: float  # epoch seconds of the join's first prediction


class JoinStore(Protocol):
    async def add_many(self, arriving: Sequence[Arriving], *, now: float) -> list[Added]:
        """Record each site's prediction unless that site already answered or the join was fused; one ``Added``
        per item, in order."""
        ...

    async def claim_many(self, keys: Sequence[JoinKey], *, now: float) -> dict[JoinKey, Claimed]:
        """The contents of the joins this caller may emit now (exactly one caller gets each); the others left out."""
        ...

    async def release_many(self, keys: Sequence[JoinKey], *, now: float) -> None:
        """Give up claims whose results could not be published: the joins are due again at once, for whoever
        comes first (the re-delivered batch or a sweeper), instead of after the lease."""
        ...

    async def emitted_many(self, keys: Sequence[JoinKey]) -> None:
        """The fused results were acknowledged by the broker: these joins are closed for good."""
        ...

    async def due(self, *, now: float, limit: int) -> list[JoinKey]:
        """Joins whose deadline passed, and claimed joins whose emission lease ran out."""
        ...
