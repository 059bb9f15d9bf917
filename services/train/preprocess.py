"""Imputation and scaling, fitted on the training rows only (pure: numpy).

A site's model is scored on every other site, where other tests are missing and values lie elsewhere. So the
preprocessing is built to travel (each rule measured in docs/train.md):

- **Conditional imputation.** A missing value becomes what the site's own records predict from the patient's other
  values (ridge regressions, a few rounds), not the site's median. A model that leans on a test another site seldom
  records (thallium scans: 1 % missing at Cleveland, 83 % at VA Long Beach) then still ranks that site's patients by
  what their other values say about the missing test, as a model trained without it would.
- **Nothing outside the training range.** Imputed and observed values are clipped to the range the site observed.
- **Only what the site can teach.** A feature observed in fewer than ``MIN_COUNT`` rows, or whose rarer value
  occurs in fewer than ``MIN_COUNT`` rows, is left out: its weight would rest on a handful of patients, and at a
  site where that value is common it would decide alone. Likewise a missing-indicator column is kept only when
  the feature is both missing and observed in at least ``MIN_COUNT`` rows.
- **Standardize only real values.** 0/1 columns (coded features, indicators) stay 0/1: standardizing a column that
  is 1 % ones puts a one at another site ten standard deviations out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COUNT = 5
IMPUTATION_ROUNDS = 5
RIDGE = 1.0  # on standardized predictors: a mild pull for the sites with ~100 rows and correlated one-hot columns


@dataclass(frozen=True)
class Preprocessing:
    """Raw features (NaN = missing) → model inputs ``[used features scaled, missing indicators]``.

    ``initial`` (the observed means) starts the imputation; each of ``rounds`` rounds sets every missing value to
    ``filled @ weight + bias`` (``weight[k, j]``: feature k's coefficient for feature j, zero diagonal); the result,
    observed values included, is clipped to ``[lower, upper]``. ``columns`` are the features the model uses,
    ``indicators`` those that get a missing-indicator column; ``mean`` / ``scale`` belong to ``columns``."""

    initial: np.ndarray  # [F]
    weight: np.ndarray  # [F, F]
    bias: np.ndarray  # [F]
    rounds: int
    lower: np.ndarray  # [F]
    upper: np.ndarray  # [F]
    columns: np.ndarray  # int indices into the features
    indicators: np.ndarray  # int indices into the features
    mean: np.ndarray  # [len(columns)]; 0 for 0/1 columns
    scale: np.ndarray  # [len(columns)]; 1 for 0/1 columns

    def impute(self, x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        filled = np.where(missing, self.initial, x)
        for _ in range(self.rounds):
            filled = np.where(missing, filled @ self.weight + self.bias, x)
        return np.clip(filled, self.lower, self.upper)

    def apply(self, x: np.ndarray) -> np.ndarray:
        scaled = (self.impute(x)[:, self.columns] - self.mean) / self.scale
        return np.concatenate([scaled, np.isnan(x)[:, self.indicators].astype(x.dtype)], axis=1)

    @property
    def width(self) -> int:
        return len(self.columns) + len(self.indicators)


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Coefficients and intercept of a ridge regression (intercept not penalized)."""
    x_mean, y_mean = x.mean(axis=0), y.mean()
    centred = x - x_mean
    gram = centred.T @ centred + penalty * np.eye(x.shape[1])
    coefficients = np.linalg.solve(gram, centred.T @ (y - y_mean))
    return coefficients, float(y_mean - x_mean @ coefficients)


def _off_mode_count(values: np.ndarray) -> int:
    """Rows whose value differs from the most common one: for a 0/1 column, the count of its rarer value."""
    if len(values) == 0:
        return 0
    _, counts = np.unique(values, return_counts=True)
    return int(len(values) - counts.max())


def fit_imputation(x: np.ndarray, used: np.ndarray, rounds: int = IMPUTATION_ROUNDS,
                   penalty: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """(weight ``[F, F]``, bias ``[F]``): each used feature regressed on the other used ones over the rows where it
    is observed, refitted each round on the previous round's fill. Every used feature gets its regression, even one
    never missing here: other sites miss it. Unused features have zero weights and impute their observed mean."""
    width = x.shape[1]
    missing = np.isnan(x)
    observed_mean = np.array([x[~missing[:, j], j].mean() if (~missing[:, j]).any() else 0.0 for j in range(width)])
    weight, bias = np.zeros((width, width)), observed_mean.copy()
    filled = np.where(missing, observed_mean, x)
    for _ in range(rounds if len(used) > 1 else 0):
        spread = filled[:, used].std(axis=0)
        spread = np.where(spread > 1e-12, spread, 1.0)
        next_weight = np.zeros_like(weight)
        for position, j in enumerate(used):
            others = np.delete(np.arange(len(used)), position)
            rows = ~missing[:, j]
            coefficients, intercept = _ridge(filled[np.ix_(rows, used[others])] / spread[others], x[rows, j], penalty)
            next_weight[used[others], j] = coefficients / spread[others]
            bias[j] = intercept
        weight = next_weight
        filled = np.where(missing, filled @ weight + bias, x)
    return weight, bias


def fit_preprocessing(x_train: np.ndarray, min_count: int = MIN_COUNT,
                      rounds: int = IMPUTATION_ROUNDS) -> Preprocessing:
    """Fitted on ``x_train`` only (labels are never used)."""
    observed = ~np.isnan(x_train)
    columns_values = [col[mask] for col, mask in zip(x_train.T, observed.T, strict=True)]
    used = np.array([j for j, values in enumerate(columns_values) if _off_mode_count(values) >= min_count],
                    dtype=np.int64)
    if len(used) == 0:  # too few rows for the rule: every feature that varies at all, rather than no input
        used = np.array([j for j, values in enumerate(columns_values) if _off_mode_count(values) > 0],
                        dtype=np.int64)
    lower = np.array([values.min() if len(values) else 0.0 for values in columns_values])
    upper = np.array([values.max() if len(values) else 0.0 for values in columns_values])
    weight, bias = fit_imputation(x_train, used, rounds)
    initial = np.array([values.mean() if len(values) else 0.0 for values in columns_values])
    missing_count = (~observed).sum(axis=0)
    indicators = np.array([j for j in used if min_count <= missing_count[j] <= len(x_train) - min_count],
                          dtype=np.int64)
    partial = Preprocessing(initial=initial, weight=weight, bias=bias, rounds=rounds, lower=lower, upper=upper,
                            columns=used, indicators=indicators, mean=np.zeros(len(used)), scale=np.ones(len(used)))
    imputed = partial.impute(x_train)[:, used]
    binary = np.array([set(np.unique(values)) <= {0.0, 1.0} for values in (columns_values[j] for j in used)],
                      dtype=bool)
    spread = imputed.std(axis=0) if len(imputed) else np.ones(len(used))
    mean = np.where(binary, 0.0, imputed.mean(axis=0) if len(imputed) else 0.0)
    scale = np.where(binary | (spread <= 1e-12), 1.0, spread)
    return Preprocessing(initial=initial, weight=weight, bias=bias, rounds=rounds, lower=lower, upper=upper,
                         columns=used, indicators=indicators, mean=mean, scale=scale)
