"""Each feature's training-split distribution on the card: quantiles or a rate, over recorded rows, none under 10."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from services.train.dataset import split
from services.train.distributions import QUANTILE_LEVELS, feature_distributions
from services.train.training import train_model
from shared.schemas.models import DISTRIBUTION_MIN_ROWS, ModelCard
from tests.unit.train.conftest import quick


def test_numeric_features_get_ten_equally_likely_quantiles_of_the_recorded_values_only() -> None:
    values = np.arange(1.0, 101.0)  # 1..100
    x = np.column_stack([np.concatenate([values, [np.nan] * 20])])
    [(name, d)] = feature_distributions(["age"], x).items()
    assert name == "age" and d.kind == "numeric" and d.n == 100
    assert len(d.quantiles) == 10 and QUANTILE_LEVELS[0] == pytest.approx(0.05)
    assert d.quantiles == pytest.approx(np.quantile(values, QUANTILE_LEVELS).tolist())
    assert d.quantiles[0] == pytest.approx(5.95) and d.quantiles[-1] == pytest.approx(95.05)


def test_flags_get_the_rate_of_one_among_recorded_rows() -> None:
    x = np.array([[1.0], [0.0], [0.0], [1.0], [np.nan]] * 4)
    d = feature_distributions(["exercise_angina"], x, [True])["exercise_angina"]
    assert d.kind == "rate" and d.n == 16 and d.rate == pytest.approx(0.5) and d.quantiles == []


def test_a_feature_recorded_by_fewer_than_ten_rows_gets_no_distribution() -> None:
    x = np.full((50, 2), np.nan)
    x[:9, 0] = np.arange(9)
    x[:10, 1] = np.arange(10)
    out = feature_distributions(["rare", "just_enough"], x)
    assert DISTRIBUTION_MIN_ROWS == 10
    assert "rare" not in out and out["just_enough"].n == 10


def test_old_cards_without_distributions_still_load() -> None:
    card = {
        "task": "t",
        "site": "pooled",
        "version": "v",
        "status": "active",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "artifact_uri": "file:///m",
        "artifact_sha256": "0" * 64,
    }
    assert ModelCard.model_validate_json(json.dumps(card)).distributions == {}


def test_train_puts_the_training_splits_distributions_on_the_model(tasks, heart_data) -> None:
    task = quick(tasks["heart_disease"], family="logistic", trials=1)
    model = train_model(task, heart_data, "switzerland")
    train = split(heart_data, task.test_fraction, task.model.seed, validation_fraction=0.0).train.at_site("switzerland")
    expected = feature_distributions(heart_data.feature_names, train.x, [f.equals is not None for f in task.features])
    assert model.distributions == expected
    assert model.distributions["thallium_normal"].kind == "rate"
    assert model.distributions["age"].kind == "numeric" and len(model.distributions["age"].quantiles) == 10
    assert "cholesterol" not in model.distributions  # Switzerland recorded no cholesterol
    recorded = (~np.isnan(train.x)).sum(axis=0)
    for name, count in zip(heart_data.feature_names, recorded, strict=True):
        assert (name in model.distributions) == (count >= DISTRIBUTION_MIN_ROWS), name
