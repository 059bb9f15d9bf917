"""Fusion math (pure): weights from the model cards' cross-site validation; the three ways to combine are in
shared/fusion.py (one formula for fuse and for report's questioning), re-exported here.

A model's weight is its skill above chance, ``mean AUC - 0.5``, measured on the other hospitals' data its card
reports (``cross_site``), leaving out the hospital whose record is being fused: the weight never rests on the data
it is about to be judged on, and a model that travels badly to other hospitals counts less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shared.fusion import (  # noqa: F401  (re-exported: the combination formulas live in shared/)
    LOGIT_EPSILON,
    METHODS,
    Fused,
    Method,
    Vote,
    combine,
    logit,
    logit_average,
    majority_vote,
    sigmoid,
    weighted_average,
)
from shared.schemas.models import ModelCard

CHANCE_AUC = 0.5
MIN_SKILL = 0.01  # a model no better than chance still counts a little, so weights never all vanish


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
