"""Imputation and scaling, fitted on the training split only (pure: numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """Missing values become the training median, and features missing in training get a missing-indicator column
    (whether a test was done carries information, e.g. which site or work-up a patient had); then every column is
    standardized with training statistics. ``indicators`` lists the features that get one."""

    median: np.ndarray
    indicators: np.ndarray  # int indices into the features
    mean: np.ndarray  # over features + indicators
    scale: np.ndarray

    def expand(self, x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        return np.concatenate([np.where(missing, self.median, x), missing[:, self.indicators].astype(x.dtype)], axis=1)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (self.expand(x) - self.mean) / self.scale

    @property
    def width(self) -> int:
        return len(self.mean)


def fit_preprocessing(x_train: np.ndarray) -> Preprocessing:
    """A feature never observed in training imputes to 0 and keeps scale 1; a constant one keeps scale 1."""
    observed = ~np.isnan(x_train)
    median = np.array([np.median(col[mask]) if mask.any() else 0.0
                       for col, mask in zip(x_train.T, observed.T, strict=True)])
    indicators = np.flatnonzero((~observed).any(axis=0))
    partial = Preprocessing(median=median, indicators=indicators, mean=np.zeros(0), scale=np.zeros(0))
    expanded = partial.expand(x_train)
    mean = expanded.mean(axis=0)
    scale = expanded.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return Preprocessing(median=median, indicators=indicators, mean=mean, scale=scale)
