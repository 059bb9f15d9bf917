import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

from services.train.evaluate import evaluate, expected_calibration_error, roc_auc, roc_curve


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn_including_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200).astype(float)
    p = np.round(np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1), 1)  # rounded: many ties
    metrics = evaluate(y, p)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["f1"] == pytest.approx(f1_score(y, p >= 0.5))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p))
    assert metrics["tp"] + metrics["fp"] + metrics["tn"] + metrics["fn"] == 200


def test_auc_is_absent_for_one_class_and_the_roc_curve_spans_the_square() -> None:
    assert roc_auc(np.ones(5), np.linspace(0, 1, 5)) is None
    assert "auc" not in evaluate(np.ones(5), np.linspace(0, 1, 5))
    fpr, tpr = roc_curve(np.array([0, 1, 0, 1.0]), np.array([0.1, 0.9, 0.4, 0.35]))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)


def test_calibration_error_is_zero_when_rates_match_and_large_when_they_do_not() -> None:
    y = np.array([0, 0, 0, 1] * 25, dtype=float)
    assert expected_calibration_error(y, np.full(100, 0.25)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.95)) == pytest.approx(0.70)
