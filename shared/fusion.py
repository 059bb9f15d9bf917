"""The three ways to combine models' votes into one result (pure): one formula, used by fuse and by report.

fuse combines the served models' predictions with these (``services/fuse/fusion.py`` adds the weights from the
cards' cross-site validation); report's questioning (``services/report/questioning.py``) replays the same
combination over plausible completions of a record, so the risk it shows after an answer is the one fuse will
publish.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared.schemas.predictions import FusionMethod as Method

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
