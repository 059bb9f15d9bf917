"""The join (pure): when a record's predictions for a task are complete, and the one fused result they make.

A join is open from the first prediction of (record, task) until either every expected model (the task's active
models, one per site) has answered, or the task's deadline passes; then it is fused exactly once. A prediction
from a site that already answered is a duplicate; one arriving after the join was fused is late. Both are
counted and never re-fused: the store (Redis) applies these rules atomically, this module decides the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.fuse.directory import ref_text
from services.fuse.fusion import Vote, combine, cross_site_weights
from services.fuse.verification import Answer, verify
from shared.schemas.models import ModelCard, ModelRef
from shared.schemas.predictions import Contribution, FusedPrediction, Prediction
from shared.tasks import FusionSpec


class Arrival(StrEnum):
    """What the store made of one prediction."""

    ADDED = "added"
    DUPLICATE = "duplicate"  # this site already answered for this record and task
    LATE = "late"  # the join was already fused


def is_complete(received_sites: Iterable[str], expected_sites: Iterable[str]) -> bool:
    """Every expected site answered. With no expected model known, only the deadline closes a join."""
    expected = set(expected_sites)
    return bool(expected) and expected <= set(received_sites)


@dataclass(frozen=True)
class FusedJoin:
    """A join's fused result, and which expected models it went without."""

    result: FusedPrediction
    missing: list[str]  # the expected models that did not answer, as task/site/version


def fuse(
    fusion: FusionSpec,
    predictions: Sequence[Prediction],
    expected: Mapping[str, ModelCard],
    card_of: Callable[[ModelRef], ModelCard | None],
) -> FusedJoin:
    """One verified result from the predictions of one (record, task): one per site, ordered by site."""
    if not predictions:
        raise ValueError("a join holds at least one prediction")
    ordered = sorted(predictions, key=lambda p: p.model.site)
    first = ordered[0]
    cards = [card_of(p.model) for p in ordered]
    weights = cross_site_weights(cards, first.hospital)
    votes = [
        Vote(probability=p.probability, weight=w, threshold=card.threshold if card else 0.5)
        for p, w, card in zip(ordered, weights, cards, strict=True)
    ]
    fused = combine(fusion.method, votes)
    received = {p.model.site for p in ordered}
    missing = [ref_text(card.ref) for site, card in sorted(expected.items()) if site not in received]
    unexpected = [ref_text(p.model) for p in ordered if expected and p.model.site not in expected]
    verdict = verify(
        fusion.method,
        [Answer(ref_text(p.model), v) for p, v in zip(ordered, votes, strict=True)],
        fused,
        missing=missing,
        unexpected=unexpected,
        review_spread=fusion.review_spread,
        deadline_seconds=fusion.deadline_seconds,
        expected_count=len(expected),
    )
    carried = next((p for p in ordered if p.features), first)
    result = FusedPrediction(
        record_id=first.record_id,
        patient=first.patient,
        hospital=first.hospital,
        task=first.task,
        probability=fused.probability,
        label=fused.label,
        method=fusion.method,
        contributions=[
            Contribution(model=p.model, probability=p.probability, weight=v.weight)
            for p, v in zip(ordered, votes, strict=True)
        ],
        agreement=verdict.agreement,
        needs_review=verdict.needs_review,
        review_reasons=verdict.reasons,
        features=carried.features,
        quality_flags=carried.quality_flags,
    )
    return FusedJoin(result=result, missing=missing)
