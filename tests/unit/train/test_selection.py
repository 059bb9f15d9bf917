"""Cross-validated selection: out-of-fold predictions, the logistic at its optimum, the one-standard-error rule."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from services.train.evaluate import roc_auc
from services.train.fit import TrialConfig, cross_validate, fit_logistic, positive_weight, train_network
from services.train.network import build_network
from services.train.search import SearchResult, Trial, complexity

MLP = TrialConfig("mlp", 32, 2, 0.0, 0.0, 0.01)
LOGISTIC = TrialConfig("logistic", 0, 0, 0.0, 0.01, 0.001)


def test_out_of_fold_predictions_come_from_copies_that_never_saw_the_row() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 6)), (rng.random(120) < 0.5).astype(float)  # labels are pure noise
    folds = np.arange(120) % 4
    memorizer = train_network(MLP, x, y, seed=1, epochs=150)
    with torch.no_grad():
        in_sample = torch.sigmoid(memorizer(torch.tensor(x, dtype=torch.float32))).squeeze(-1).numpy()
    assert roc_auc(y, in_sample) > 0.9  # it can memorize the noise...
    result = cross_validate(MLP, x, y, folds, seed=1, max_epochs=150, patience=150)
    assert abs(roc_auc(y, result.out_of_fold) - 0.5) < 0.15  # ...but nothing it memorized reaches the held rows


def test_the_epoch_count_is_where_the_out_of_fold_loss_bottoms_out() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    y = (x[:, 0] + rng.normal(0, 0.7, 200) > 0).astype(float)  # one real signal, seven noise columns
    folds = np.arange(200) % 5
    short = cross_validate(MLP, x, y, folds, seed=2, max_epochs=400, patience=30)
    assert 1 <= short.epochs < 400  # an unregularized wide MLP overfits: stopped well before the maximum
    assert roc_auc(y, short.out_of_fold) > 0.75


def test_the_logistic_is_fitted_to_its_penalized_optimum() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 5))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + rng.normal(0, 1, 150) > 1.0).astype(float)
    coefficients, intercept = fit_logistic(x, y, weight_decay=0.05)
    # The same objective in scikit-learn's terms: C = 1 / (n · weight_decay), positives weighted neg/pos.
    weights = np.where(y == 1, positive_weight(y), 1.0)
    reference = LogisticRegression(C=1 / (150 * 0.05), tol=1e-10, max_iter=10_000).fit(x, y, sample_weight=weights)
    assert coefficients == pytest.approx(reference.coef_[0], abs=1e-4)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-4)


def test_an_untrained_network_has_no_opinion() -> None:
    network = build_network(10, "mlp", 16, 2, 0.0)
    out = network(torch.randn(50, 10))
    assert torch.all(out == 0)  # the output layer starts at zero: early stopping starts from "no opinion"


def trial(config: TrialConfig, score: float, error: float) -> Trial:
    return Trial(config, 0, score, error, 10)


def test_the_simplest_trial_within_one_standard_error_of_the_best_is_chosen() -> None:
    big = TrialConfig("mlp", 32, 2, 0.0, 0.0001, 0.001)
    small = TrialConfig("mlp", 8, 1, 0.0, 0.0001, 0.001)
    assert complexity(LOGISTIC) < complexity(small) < complexity(big)
    noisy = SearchResult([trial(big, 0.90, 0.05), trial(small, 0.88, 0.05), trial(LOGISTIC, 0.86, 0.05)], 3)
    assert noisy.best().config == LOGISTIC  # the folds cannot tell them apart: the simplest
    clear = SearchResult([trial(big, 0.90, 0.01), trial(small, 0.88, 0.01), trial(LOGISTIC, 0.86, 0.01)], 3)
    assert clear.best().config == big  # they can: the best
    assert clear.best("logistic").config == LOGISTIC and SearchResult([], 0).best() is None
    stronger = TrialConfig("logistic", 0, 0, 0.0, 0.1, 0.001)
    assert SearchResult([trial(LOGISTIC, 0.80, 0.02), trial(stronger, 0.79, 0.02)], 2).best().config == stronger
