"""Verification of a fused result (pure): ranges, completeness, agreement, and the reasons a person should look.

Reasons are sentences for a clinician or an operator; they name models and numbers the models produced, never
patient data.

Models disagree when one answers "yes" and another "no", each with conviction: at least half the task's
``review_spread`` past its own decision threshold. On the leave-one-hospital-out records a plain probability spread
asked for review on 44 % and caught no more wrong answers than it let through (21 % wrong either way); this rule
asks on 10 %, of which 35 % are wrong against 20 % of the rest (docs/fuse.md, "What needs_review catches"). A model
that answers about 0.5 for everyone abstains; it no longer makes every confident answer look contested.

Only models that fusion listens to can disagree: one carrying less than a third of an equal share of the weight
(its cards show it little or no better than chance on other hospitals' patients) barely moves the fused result, and
its dissent says nothing about it. In a fresh ``make demo`` whose Swiss model ranked the other hospitals' patients
near or below chance (cross-site AUC 0.38-0.58) and so weighed 1-6 %, 78 of the 79 flags were that model against
the others; under this rule, 6. On the leave-one-hospital-out records (seeds 1-9) the cut-off removes 25 of 975
flags and leaves their precision as it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.fuse.fusion import Fused, Method, Vote

MIN_WEIGHT_SHARE = 1 / 3  # of an equal share: below it, a model's dissent does not ask for review


@dataclass(frozen=True)
class Answer:
    """A contribution as verification sees it: who answered, and what."""

    model: str  # task/site/version
    vote: Vote


@dataclass(frozen=True)
class Verdict:
    agreement: float
    reasons: list[str] = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        return bool(self.reasons)


def in_range(probability: float) -> bool:
    return math.isfinite(probability) and 0.0 <= probability <= 1.0


def spread(answers: Sequence[Answer]) -> float:
    probabilities = [a.vote.probability for a in answers]
    return max(probabilities) - min(probabilities) if probabilities else 0.0


def heard(answers: Sequence[Answer]) -> list[Answer]:
    """The answers that carry at least a third of an equal share of the fused weight."""
    total = sum(a.vote.weight for a in answers)
    if not total > 0:
        return list(answers)
    return [a for a in answers if a.vote.weight / total >= MIN_WEIGHT_SHARE / len(answers)]


def opposed(answers: Sequence[Answer], review_spread: float) -> tuple[Answer, Answer] | None:
    """Among the models fusion listens to, the most convinced "yes" and the most convinced "no", when both are at
    least ``review_spread / 2`` past their own thresholds; ``None`` when they do not disagree that strongly."""
    margin = review_spread / 2
    counted = heard(answers)
    yes = [a for a in counted if a.vote.probability - a.vote.threshold >= margin]
    no = [a for a in counted if a.vote.threshold - a.vote.probability >= margin]
    if not yes or not no:
        return None
    return (
        max(yes, key=lambda a: a.vote.probability - a.vote.threshold),
        max(no, key=lambda a: a.vote.threshold - a.vote.probability),
    )


def majority_share(answers: Sequence[Answer]) -> float:
    """Share of the models (by count) on the larger side of the vote: 1 = unanimous."""
    if not answers:
        return 1.0
    positive = sum(a.vote.positive for a in answers)
    return max(positive, len(answers) - positive) / len(answers)


def agreement(method: Method, answers: Sequence[Answer]) -> float:
    """1 - probability spread for the averaging methods; the majority's share for a vote."""
    return majority_share(answers) if method == "majority_vote" else 1.0 - spread(answers)


def verify(
    method: Method,
    answers: Sequence[Answer],
    fused: Fused,
    *,
    missing: Sequence[str],
    unexpected: Sequence[str],
    review_spread: float,
    deadline_seconds: float,
    expected_count: int,
) -> Verdict:
    reasons: list[str] = []
    for answer in answers:
        if not in_range(answer.vote.probability):
            reasons.append(f"{answer.model} gave a probability outside [0, 1]")
    if not in_range(fused.probability):
        reasons.append("the fused probability is outside [0, 1]")
    if expected_count == 0:
        reasons.append(
            "no active model of this task is known to fuse, so completeness cannot be checked; "
            f"fused the {len(answers)} prediction(s) that arrived within {deadline_seconds:g} s"
        )
    for model in missing:
        reasons.append(f"no prediction from {model} within {deadline_seconds:g} s")
    if missing and expected_count:
        reasons.append(f"only {len(answers)} of {expected_count} expected models answered")
    for model in unexpected:
        reasons.append(f"prediction from {model}, which is not an active model of this task")
    if len(answers) > 1:
        if (pair := opposed(answers, review_spread)) is not None:
            yes, no = pair
            reasons.append(
                f"models disagree: {yes.model} says yes ({yes.vote.probability:.2f}, threshold "
                f"{yes.vote.threshold:.2f}), {no.model} says no ({no.vote.probability:.2f}, threshold "
                f"{no.vote.threshold:.2f}); both at least {review_spread / 2:.2f} past their thresholds "
                f"(half the task's review spread of {review_spread:.2f})"
            )
        if method == "majority_vote" and math.isclose(fused.probability, 0.5, abs_tol=1e-9):
            reasons.append("the weighted vote is tied; the label follows the weighted average")
    share = agreement(method, answers)
    return Verdict(agreement=min(max(share, 0.0), 1.0), reasons=reasons)
