"""Each feature's distribution on a model's training split, for the card (pure: numpy only).

Questioning (services/report/questioning.py) weighs a missing input's plausible values by them. Only rows that
recorded the feature count; a feature recorded by fewer than ``DISTRIBUTION_MIN_ROWS`` rows gets none (a card
travels to other institutions, and an aggregate of a handful of rows describes those patients).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.schemas.models import DISTRIBUTION_MIN_ROWS, FeatureDistribution

QUANTILE_LEVELS = tuple((k + 0.5) / 10 for k in range(10))
"""The 5th, 15th, ..., 95th percentiles: ten equally likely values."""


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def feature_distributions(
    feature_names: Sequence[str], x: np.ndarray, binary: Sequence[bool] | None = None
) -> dict[str, FeatureDistribution]:
    """``x`` float [N, F], NaN = not recorded. ``binary[i]`` says feature i is a 0/1 indicator (the task's
    ``equals`` features); without it, a feature whose recorded values are all 0 or 1 is taken as one."""
    out: dict[str, FeatureDistribution] = {}
    for i, name in enumerate(feature_names):
        column = np.asarray(x[:, i], dtype=np.float64)
        recorded = column[~np.isnan(column)]
        n = len(recorded)
        if n < DISTRIBUTION_MIN_ROWS:
            continue
        is_rate = binary[i] if binary is not None else _is_binary(recorded)
        if is_rate:
            out[name] = FeatureDistribution(kind="rate", n=n, rate=float(np.mean(recorded == 1.0)))
        else:
            quantiles = np.quantile(recorded, QUANTILE_LEVELS, method="linear")
            out[name] = FeatureDistribution(kind="numeric", n=n, quantiles=[round(float(q), 6) for q in quantiles])
    return out
