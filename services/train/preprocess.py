"""Imputation and scaling, fitted on the training rows only (pure: numpy).

A site's model is scored on every other site, where other tests are missing and values lie elsewhere, so the
preprocessing is built to travel (each rule measured in docs/train.md):

- **Only what the site can teach.** A feature whose values differ from its most common value in fewer than
  ``MIN_COUNT`` training rows is left out: its weight would rest on a handful of patients, and at a site where that
  value is common it would decide alone (major vessels: recorded once or twice in VA Long Beach's 150 training rows).
  Likewise a missing-indicator column is kept only when the feature is both missing and recorded in at least
  ``MIN_COUNT`` rows.
- **Standardize only real values.** 0/1 columns (coded features, missing indicators) stay 0/1: standardizing a
  column that is 1 % ones puts a one at another site ten standard deviations out.
- **Nothing outside the training range.** A missing value becomes the training mean; every value is clipped to
  the range the site recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COUNT = 5


@dataclass(frozen=True)
class Preprocessing:
    """Raw features (NaN = missing) → model inputs ``[used features, scaled; missing indicators]``.

    Missing values become ``fill``, then every value is clipped to ``[lower, upper]``. ``columns`` are the features
    the model uses (``mean`` / ``scale`` are theirs: 0 and 1 for 0/1 columns), ``indicators`` those that get a
    missing-indicator column."""

    fill: np.ndarray  # [F]
    lower: np.ndarray  # [F]
    upper: np.ndarray  # [F]
    columns: np.ndarray  # int indices into the features
    indicators: np.ndarray  # int indices into the features
    mean: np.ndarray  # [len(columns)]
    scale: np.ndarray  # [len(columns)]

    def impute(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.where(np.isnan(x), self.fill, x), self.lower, self.upper)

    def apply(self, x: np.ndarray) -> np.ndarray:
        scaled = (self.impute(x)[:, self.columns] - self.mean) / self.scale
        return np.concatenate([scaled, np.isnan(x)[:, self.indicators].astype(x.dtype)], axis=1)

    @property
    def width(self) -> int:
        return len(self.columns) + len(self.indicators)


def _off_mode_count(values: np.ndarray) -> int:
    """Rows whose value differs from the most common one: for a 0/1 column, the count of its rarer value."""
    if len(values) == 0:
        return 0
    _, counts = np.unique(values, return_counts=True)
    return int(len(values) - counts.max())


def fit_preprocessing(x_train: np.ndarray, min_count: int = MIN_COUNT) -> Preprocessing:
    """Fitted on ``x_train`` only (labels are never used)."""
    recorded = [column[~np.isnan(column)] for column in x_train.T]
    used = np.array([j for j, values in enumerate(recorded) if _off_mode_count(values) >= min_count], dtype=np.int64)
    if len(used) == 0:  # too few rows for the rule: every feature that varies at all, rather than no input
        used = np.array([j for j, values in enumerate(recorded) if _off_mode_count(values) > 0], dtype=np.int64)
    fill = np.array([values.mean() if len(values) else 0.0 for values in recorded])
    lower = np.array([values.min() if len(values) else 0.0 for values in recorded])
    upper = np.array([values.max() if len(values) else 0.0 for values in recorded])
    missing = np.isnan(x_train).sum(axis=0)
    indicators = np.array([j for j in used if min_count <= missing[j] <= len(x_train) - min_count], dtype=np.int64)
    imputed = np.clip(np.where(np.isnan(x_train), fill, x_train), lower, upper)[:, used]
    binary = np.array([set(np.unique(recorded[j])) <= {0.0, 1.0} for j in used], dtype=bool)
    spread = imputed.std(axis=0)
    mean = np.where(binary, 0.0, imputed.mean(axis=0))
    scale = np.where(binary | (spread <= 1e-12), 1.0, spread)
    return Preprocessing(
        fill=fill, lower=lower, upper=upper, columns=used, indicators=indicators, mean=mean, scale=scale
    )
