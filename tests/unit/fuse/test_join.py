"""The join's decisions and the fused result it builds."""

import pytest

from services.fuse.directory import ModelDirectory
from services.fuse.join import fuse, is_complete
from shared.tasks import FusionSpec
from tests.support.factories.fuse import THREE_CARDS, card, expected_weights_for_cleveland, prediction

SPEC = FusionSpec(method="weighted_average", deadline_seconds=2.0, review_spread=0.35)


def test_complete_means_every_expected_site_answered() -> None:
    assert is_complete({"a", "b", "c"}, {"a", "b"})
    assert not is_complete({"a"}, {"a", "b"})
    assert not is_complete({"a"}, set())  # nothing known to wait for: only the deadline closes it


def test_three_predictions_become_one_result_with_the_cross_site_weights() -> None:
    directory = ModelDirectory(THREE_CARDS)
    predictions = [prediction("switzerland", 0.7), prediction("hungary", 0.6), prediction("va-long-beach", 0.8)]
    fused = fuse(SPEC, predictions, directory.expected("heart_disease"), directory.card)
    result = fused.result
    weights = {c.model.site: c.weight for c in result.contributions}
    assert weights == pytest.approx(expected_weights_for_cleveland())
    assert [c.model.site for c in result.contributions] == ["hungary", "switzerland", "va-long-beach"]
    assert result.probability == pytest.approx(sum(weights[p.model.site] * p.probability for p in predictions))
    assert result.label == 1 and result.method == "weighted_average"
    assert result.agreement == pytest.approx(0.8)
    assert not result.needs_review and fused.missing == []
    assert result.record_id == "rec-1" and result.hospital == "cleveland" and result.features == [61.0, 1.0, None]


def test_a_missing_model_is_named_and_asks_for_review() -> None:
    directory = ModelDirectory(THREE_CARDS)
    fused = fuse(
        SPEC,
        [prediction("hungary", 0.6), prediction("va-long-beach", 0.7)],
        directory.expected("heart_disease"),
        directory.card,
    )
    assert fused.missing == ["heart_disease/switzerland/v1"]
    assert fused.result.needs_review
    assert "no prediction from heart_disease/switzerland/v1 within 2 s" in fused.result.review_reasons


def test_the_task_config_chooses_the_method() -> None:
    directory = ModelDirectory([card("a", auc=0.8), card("b", auc=0.8)])
    predictions = [prediction("a", 0.9), prediction("b", 0.3)]
    vote = fuse(
        FusionSpec(method="majority_vote", review_spread=1.0),
        predictions,
        directory.expected("heart_disease"),
        directory.card,
    ).result
    assert vote.method == "majority_vote" and vote.probability == pytest.approx(0.5) and vote.agreement == 0.5
    logit = fuse(
        FusionSpec(method="logit_average", review_spread=1.0),
        predictions,
        directory.expected("heart_disease"),
        directory.card,
    ).result
    assert logit.method == "logit_average" and 0.5 < logit.probability < 0.9


def test_a_prediction_from_a_model_that_is_not_expected_is_used_and_reported() -> None:
    directory = ModelDirectory([card("a", auc=0.8)])
    result = fuse(
        SPEC, [prediction("a", 0.6), prediction("pooled", 0.6)], directory.expected("heart_disease"), directory.card
    ).result
    assert len(result.contributions) == 2
    assert result.review_reasons == [
        "prediction from heart_disease/pooled/v1, which is not an active model of this task"
    ]
