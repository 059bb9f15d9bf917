"""Verification: completeness, agreement and readable review reasons."""

import pytest

from services.fuse.fusion import Fused, Vote, combine
from services.fuse.verification import Answer, agreement, verify


def answers(*probabilities: float) -> list[Answer]:
    return [Answer(f"heart_disease/site{i}/v1", Vote(p, 1.0)) for i, p in enumerate(probabilities)]


def check(method="weighted_average", probabilities=(0.6, 0.7, 0.65), **kwargs):
    items = answers(*probabilities)
    fused = combine(method, [a.vote for a in items])
    options = {
        "missing": [],
        "unexpected": [],
        "review_spread": 0.35,
        "deadline_seconds": 2.0,
        "expected_count": len(items),
    } | kwargs
    return verify(method, items, fused, **options)


def test_agreeing_complete_answers_need_no_review() -> None:
    verdict = check()
    assert not verdict.needs_review and verdict.reasons == []
    assert verdict.agreement == pytest.approx(0.9)


def test_a_convinced_yes_against_a_convinced_no_asks_for_review_naming_both() -> None:
    verdict = check(probabilities=(0.1, 0.5, 0.9))
    assert verdict.needs_review
    [reason] = verdict.reasons
    assert "heart_disease/site2/v1 says yes (0.90, threshold 0.50)" in reason
    assert "heart_disease/site0/v1 says no (0.10, threshold 0.50)" in reason
    assert "at least 0.17 past" in reason and "0.35" in reason
    assert verdict.agreement == pytest.approx(0.2)


@pytest.mark.parametrize(
    "probabilities",
    [
        (0.5, 0.99, 0.34),  # a model that abstains, and a "no" short of 0.325 (threshold − 0.35 / 2)
        (0.55, 0.99, 0.7),  # all say yes, however far apart
        (0.34, 0.66, 0.5),  # opposite answers, neither convinced enough
    ],
)
def test_spread_without_two_convinced_opposite_answers_is_not_disagreement(probabilities) -> None:
    assert check(probabilities=probabilities).reasons == []


def test_each_model_is_judged_against_its_own_threshold() -> None:
    items = [Answer("m/low/v1", Vote(0.4, 1.0, threshold=0.2)), Answer("m/high/v1", Vote(0.45, 1.0, threshold=0.7))]
    fused = combine("weighted_average", [a.vote for a in items])
    verdict = verify(
        "weighted_average",
        items,
        fused,
        missing=[],
        unexpected=[],
        review_spread=0.35,
        deadline_seconds=2.0,
        expected_count=2,
    )
    assert verdict.reasons and "m/low/v1 says yes (0.40, threshold 0.20)" in verdict.reasons[0]


def test_missing_models_are_named() -> None:
    verdict = check(probabilities=(0.6, 0.7), missing=["heart_disease/switzerland/v3"], expected_count=3)
    assert verdict.needs_review
    assert "no prediction from heart_disease/switzerland/v3 within 2 s" in verdict.reasons
    assert "only 2 of 3 expected models answered" in verdict.reasons


def test_no_known_model_and_an_unexpected_model_are_reasons() -> None:
    assert "no active model" in check(expected_count=0).reasons[0]
    verdict = check(unexpected=["heart_disease/pooled/v1"])
    assert verdict.reasons == ["prediction from heart_disease/pooled/v1, which is not an active model of this task"]


def test_out_of_range_probabilities_are_flagged() -> None:
    items = [Answer("m/a/v1", Vote(1.2, 1.0)), Answer("m/b/v1", Vote(0.9, 1.0))]
    verdict = verify(
        "weighted_average",
        items,
        Fused(1.05, 1, 0.5),
        missing=[],
        unexpected=[],
        review_spread=1.0,
        deadline_seconds=2,
        expected_count=2,
    )
    assert "m/a/v1 gave a probability outside [0, 1]" in verdict.reasons
    assert "the fused probability is outside [0, 1]" in verdict.reasons


def test_vote_agreement_is_the_majority_share_and_a_tie_is_reported() -> None:
    assert agreement("majority_vote", answers(0.9, 0.8, 0.1)) == pytest.approx(2 / 3)
    assert agreement("majority_vote", answers(0.9, 0.8)) == 1.0
    verdict = check("majority_vote", (0.9, 0.1), review_spread=1.0)
    assert verdict.reasons == ["the weighted vote is tied; the label follows the weighted average"]
    assert verdict.agreement == 0.5


def test_a_model_fusion_barely_listens_to_cannot_ask_for_review_alone() -> None:
    # weights as fuse gives them when one card shows no skill on other hospitals: the floor against three real skills
    weak = [
        Answer("m/switzerland/v1", Vote(0.95, 0.01)),
        Answer("m/cleveland/v1", Vote(0.05, 0.35)),
        Answer("m/hungary/v1", Vote(0.10, 0.36)),
        Answer("m/va-long-beach/v1", Vote(0.20, 0.28)),
    ]
    fused = combine("weighted_average", [a.vote for a in weak])
    options = {"missing": [], "unexpected": [], "review_spread": 0.35, "deadline_seconds": 2.0, "expected_count": 4}
    assert verify("weighted_average", weak, fused, **options).reasons == []
    # the same answers with that model at 0.17 of the weight (over a third of an equal 0.25): its dissent counts
    heard = [Answer("m/switzerland/v1", Vote(0.95, 0.2)), *weak[1:]]
    fused = combine("weighted_average", [a.vote for a in heard])
    [reason] = verify("weighted_average", heard, fused, **options).reasons
    assert "m/switzerland/v1 says yes (0.95" in reason and "m/cleveland/v1 says no (0.05" in reason
