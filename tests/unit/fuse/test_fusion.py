"""Fusion math: weights from cross-site validation and the three combining rules."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.fuse.fusion import (
    MIN_SKILL,
    Vote,
    combine,
    cross_site_weights,
    logit,
    sigmoid,
    validation_auc,
)
from tests.support.factories.fuse import THREE_CARDS, card, expected_weights_for_cleveland


def test_weights_are_skill_above_chance_on_the_other_sites_leaving_out_the_records_hospital() -> None:
    weights = cross_site_weights(THREE_CARDS, "cleveland")
    expected = expected_weights_for_cleveland()
    assert weights == pytest.approx([expected["hungary"], expected["va-long-beach"], expected["switzerland"]])
    assert sum(weights) == pytest.approx(1.0)
    # The VA model travels best to Hungary and Switzerland, so it counts most.
    assert weights[1] == max(weights)


def test_the_records_own_hospital_never_feeds_its_weight() -> None:
    leaky = card("hungary", cross_site={"cleveland": 0.99, "switzerland": 0.60})
    assert validation_auc(leaky, "cleveland") == pytest.approx(0.60)
    assert validation_auc(leaky, "va-long-beach") == pytest.approx((0.99 + 0.60) / 2)


def test_a_models_own_site_is_not_cross_site_validation() -> None:
    own = card("hungary", cross_site={"hungary": 0.95, "switzerland": 0.70}, auc=0.95)
    assert validation_auc(own, "cleveland") == pytest.approx(0.70)
    assert validation_auc(card("hungary", cross_site={"hungary": 0.95}, auc=0.95), "cleveland") == 0.95


def test_without_cross_site_auc_the_own_held_out_auc_then_the_others_mean_weight_is_used() -> None:
    assert validation_auc(card("a", auc=0.8), "x") == pytest.approx(0.8)
    weights = cross_site_weights([card("a", auc=0.8), None, card("b", auc=0.6)], "x")
    assert weights[1] == pytest.approx((weights[0] + weights[2]) / 2)
    assert cross_site_weights([None, None], "x") == [0.5, 0.5]


def test_a_model_worse_than_chance_keeps_a_floor_weight() -> None:
    weights = cross_site_weights([card("a", auc=0.4), card("b", auc=0.9)], "x")
    assert weights[0] == pytest.approx(MIN_SKILL / (MIN_SKILL + 0.4))


def test_weighted_average_and_its_threshold() -> None:
    fused = combine("weighted_average", [Vote(0.2, 1.0), Vote(0.8, 3.0)])
    assert fused.probability == pytest.approx(0.65)
    assert fused.label == 1 and fused.threshold == pytest.approx(0.5)
    below = combine("weighted_average", [Vote(0.6, 1.0, threshold=0.7), Vote(0.6, 1.0, threshold=0.7)])
    assert below.label == 0


def test_logit_average_is_the_sigmoid_of_the_weighted_mean_logit() -> None:
    fused = combine("logit_average", [Vote(0.1, 1.0), Vote(0.9, 1.0)])
    assert fused.probability == pytest.approx(0.5)
    fused = combine("logit_average", [Vote(0.2, 0.25), Vote(0.9, 0.75)])
    assert fused.probability == pytest.approx(sigmoid(0.25 * logit(0.2) + 0.75 * logit(0.9)))
    assert combine("logit_average", [Vote(0.0, 1.0), Vote(1.0, 1.0)]).probability == pytest.approx(0.5)


def test_majority_vote_is_the_weighted_share_of_positive_votes() -> None:
    fused = combine("majority_vote", [Vote(0.9, 1.0), Vote(0.6, 1.0), Vote(0.1, 2.0)])
    assert fused.probability == pytest.approx(0.5)  # a tie by weight: the label follows the weighted average
    assert fused.label == int((0.9 + 0.6 + 0.2) / 4 >= 0.5)
    fused = combine("majority_vote", [Vote(0.9, 1.0), Vote(0.6, 1.0), Vote(0.1, 1.0)])
    assert fused.probability == pytest.approx(2 / 3) and fused.label == 1
    fused = combine("majority_vote", [Vote(0.55, 1.0, threshold=0.6), Vote(0.1, 1.0)])
    assert fused.probability == 0.0 and fused.label == 0


@pytest.mark.parametrize("method", ["weighted_average", "logit_average", "majority_vote"])
def test_every_method_stays_in_range(method) -> None:
    for probabilities in ([0.0, 1.0], [1e-12, 1 - 1e-12, 0.5], [1.0, 1.0, 1.0]):
        fused = combine(method, [Vote(p, 1 / 3) for p in probabilities])
        assert 0.0 <= fused.probability <= 1.0 and math.isfinite(fused.probability)


probabilities_ = st.floats(min_value=0.0, max_value=1.0)
weights_ = st.floats(min_value=1e-3, max_value=1.0)


@given(
    st.lists(st.tuples(probabilities_, weights_), min_size=1, max_size=6),
    st.sampled_from(["weighted_average", "logit_average", "majority_vote"]),
)
def test_rounding_never_takes_a_fused_probability_out_of_range(answers, method) -> None:
    fused = combine(method, [Vote(p, w) for p, w in answers])
    assert 0.0 <= fused.probability <= 1.0


def test_a_unanimous_vote_is_exactly_one_even_when_the_weights_round_above_one() -> None:
    fused = combine("majority_vote", [Vote(0.9, w) for w in (0.22, 0.04, 0.44)])  # normalized sum 1.0000000000000002
    assert fused.probability == 1.0


def test_nothing_to_fuse_is_an_error() -> None:
    with pytest.raises(ValueError):
        combine("weighted_average", [])
