"""De-duplicating one batch of records (pure): what Redis is asked, and what its answers mean.

A record is a duplicate by ``event_id`` when its ``ce_id`` was remembered (its output was acknowledged earlier) or
came earlier in the same batch; by ``content`` when its fingerprint is claimed by another event id, earlier in the
batch or before. The claim names its event, so the re-delivery of the claiming event itself (a crash between claim
and publish) goes through. Redis judges the claims in batch order, so inside a batch the first record wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    NEW = "new"
    EVENT_ID = "event_id"  # duplicate: the same ce_id again
    CONTENT = "content"  # duplicate: the same content under another ce_id


@dataclass(frozen=True)
class Candidate:
    event_id: str
    fingerprint: str


def first_of_each_event(candidates: Sequence[Candidate]) -> list[int]:
    """Positions of the first candidate of each event id; the others repeat an event of the batch."""
    firsts: dict[str, int] = {}
    for position, candidate in enumerate(candidates):
        firsts.setdefault(candidate.event_id, position)
    return sorted(firsts.values())


def verdicts(candidates: Sequence[Candidate], judged: dict[int, Verdict]) -> list[Verdict]:
    """Every candidate's verdict: Redis's for the first of each event id, ``EVENT_ID`` for the repeats."""
    return [judged.get(position, Verdict.EVENT_ID) for position in range(len(candidates))]
