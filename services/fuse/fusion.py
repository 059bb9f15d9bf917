"""Fusion math (pure): weights from the model cards' cross-site validation, and the three ways to combine.

A model's weight is its skill above chance, ``mean AUC - 0.5``, measured on the other hospitals' data its card
reports (``cross_site``), leaving out the hospital whose record is being fused: the weight never rests on the data
it is about to be judged on, and a model that travels badly to other hospitals counts less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared.schemas.models import ModelCard
from shared.schemas.predictions import FusionMethod as Method

CHANCE_AUC = 0.5
MIN_SKILL = 0.01  # a model no better than chance still counts a little, so weights never all vanish
LOGIT_EPSILON = 1e-6


@dataclass(frozen=True)
class Vote:
    """One model's answer as fusion sees it."""

    probability: float
    weight: float
    threshold: float = 0.5

    @property
    def positive(self) -> bool:
        return self.probability >= self.threshold


@dataclass(frozen=True)
class Fused:
    probability: float
    label: int
    threshold: float


def validation_auc(card: ModelCard | None, record_hospital: str) -> float | None:
    """The AUC a weight rests on: mean AUC on the other sites' held-out data, leaving out the record's hospital,
    else the card's own held-out AUC, else ``None`` (no validation known)."""
    if card is None:
        return None
    left_out = {record_hospital, card.site}  # train scores a site's model on its own held-out split too
    others = [auc for site, auc in card.cross_site.items() if site not in left_out and math.isfinite(auc)]
    if others:
        return sum(others) / len(others)
    own = card.metrics.get("auc")
    return own if own is not None and math.isfinite(own) else None


def skill(auc: float) -> float:
    return max(auc - CHANCE_AUC, MIN_SKILL)


def cross_site_weights(cards: Sequence[ModelCard | None], record_hospital: str) -> list[float]:
    """Normalized weights, one per card. A model without any validation gets the mean weight of those with one;
    when none has one, every model counts the same."""
    aucs = [validation_auc(card, record_hospital) for card in cards]
    known = [skill(a) for a in aucs if a is not None]
    default = sum(known) / len(known) if known else 1.0
    raw = [skill(a) if a is not None else default for a in aucs]
    total = sum(raw)
    return [w / total for w in raw] if total > 0 else []


def logit(p: float) -> float:
    p = min(max(p, LOGIT_EPSILON), 1.0 - LOGIT_EPSILON)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _normalized(votes: Sequence[Vote]) -> list[float]:
    total = sum(v.weight for v in votes)
    return [v.weight / total for v in votes] if total > 0 else [1.0 / len(votes)] * len(votes)


def weighted_average(votes: Sequence[Vote]) -> Fused:
    weights = _normalized(votes)
    probability = sum(w * v.probability for w, v in zip(weights, votes, strict=True))
    threshold = sum(w * v.threshold for w, v in zip(weights, votes, strict=True))
    return _decided(probability, threshold)


def logit_average(votes: Sequence[Vote]) -> Fused:
    weights = _normalized(votes)
    probability = sigmoid(sum(w * logit(v.probability) for w, v in zip(weights, votes, strict=True)))
    threshold = sigmoid(sum(w * logit(v.threshold) for w, v in zip(weights, votes, strict=True)))
    return _decided(probability, threshold)


def majority_vote(votes: Sequence[Vote]) -> Fused:
    """The weighted share of positive votes is the probability; a tie falls back to the weighted average."""
    weights = _normalized(votes)
    share = min(max(sum(w for w, v in zip(weights, votes, strict=True) if v.positive), 0.0), 1.0)  # rounding
    if math.isclose(share, 0.5, abs_tol=1e-9):
        return Fused(probability=share, label=weighted_average(votes).label, threshold=0.5)
    return Fused(probability=share, label=int(share > 0.5), threshold=0.5)


def _decided(probability: float, threshold: float) -> Fused:
    probability = min(max(probability, 0.0), 1.0)  # float rounding only: the inputs are in [0, 1]
    return Fused(probability=probability, label=int(probability >= threshold), threshold=threshold)


METHODS = {"weighted_average": weighted_average, "logit_average": logit_average, "majority_vote": majority_vote}


def combine(method: Method, votes: Sequence[Vote]) -> Fused:
    if not votes:
        raise ValueError("nothing to fuse: no votes")
    return METHODS[method](votes)
