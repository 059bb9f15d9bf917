"""Reconciling what went in with what came out (pure): every record exactly once, by ``ce_id``, nothing lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class TopicAccount:
    """One output topic's account of a batch of records."""

    topic: str
    records: int
    lost: tuple[str, ...]  # record ids with no message at all
    split: tuple[str, ...]  # record ids under more than one ce_id: two different results, not a duplicate
    strangers: int  # record ids nobody sent
    duplicates: int  # messages repeating a ce_id: re-sent by at-least-once delivery, absorbed by ce_id

    @property
    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} of {self.records} records lost on {self.topic} (e.g. {self.lost[:3]})")
        if self.split:
            found.append(f"{len(self.split)} records with more than one ce_id on {self.topic} (e.g. {self.split[:3]})")
        if self.strangers:
            found.append(f"{self.strangers} records on {self.topic} that nobody sent")
        return found


def reconcile(
    topic: str, expected: Iterable[str], seen: Mapping[str, set[str]], duplicates: int, sent: set[str]
) -> TopicAccount:
    """``expected``: this batch's record ids; ``sent``: every id the run sent (an earlier batch's late repeat is no
    stranger)."""
    expected = set(expected)
    lost = sorted(expected - seen.keys())
    split = sorted(r for r in expected & seen.keys() if len(seen[r]) > 1)
    return TopicAccount(topic, len(expected), tuple(lost), tuple(split), len(seen.keys() - sent - expected), duplicates)


def missing(expected: Iterable[str], *seen: Mapping[str, set[str]]) -> int:
    """How many expected records some topic has not shown yet."""
    return sum(1 for r in expected if any(r not in s for s in seen))
