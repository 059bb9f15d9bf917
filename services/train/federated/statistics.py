"""The preprocessing of the pooled training rows, fitted from what each site says about its own (pure: numpy).

``fit_preprocessing`` (services/train/preprocess.py) needs, per feature: how many rows recorded it and how many
did not, the mean and spread of the recorded values (a missing value becomes the mean, so the spread of the filled
column is the recorded values' sum of squared deviations over all rows), the range, whether every value is 0 or 1,
and how many rows differ from the most common value. A site sends exactly these of its training rows:

- counts (rows, positives, rows recording each feature), mean and sum of squared deviations (merged as Chan et al.
  do, which is sums and sums of squares without their cancellation), minimum and maximum;
- the count of each value for a feature with at most ``MAX_LEVELS`` distinct values at the site (the coded
  features), none for the others. A feature with more distinct values differs from its most common value in at
  least ``MAX_LEVELS`` rows, so with ``MAX_LEVELS >= min_count`` every rule decides as on the pooled rows.

``merge`` is associative (a region could merge its hospitals first) and ``preprocessing_from`` gives the same
``Preprocessing`` as ``fit_preprocessing`` on the pooled rows, up to float rounding (tests/unit/train/federated).

What leaves a site is therefore no row, but not nothing: the minimum and maximum are one patient's value each
(the preprocessing clips to the training range), and a value count of a coded feature can be small. Secure
aggregation could hide the sums, not a maximum: these statistics travel in the clear, as the weights do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from services.train.preprocess import MIN_COUNT, Preprocessing

MAX_LEVELS = 20
"""Value counts are sent for a feature with at most this many distinct values at the site."""

Levels = Mapping[float, int] | None


@dataclass(frozen=True)
class SiteStatistics:
    """One site's (or several sites' merged) training rows, feature by feature ([F] arrays)."""

    rows: int
    positives: int
    recorded: np.ndarray  # int: rows where the feature is not missing
    mean: np.ndarray  # of the recorded values (0 where none)
    m2: np.ndarray  # sum of squared deviations of the recorded values from ``mean``
    minimum: np.ndarray  # +inf where none recorded
    maximum: np.ndarray  # -inf where none recorded
    levels: tuple[Levels, ...]  # value → count, or None: more than MAX_LEVELS distinct values somewhere

    @property
    def width(self) -> int:
        return len(self.recorded)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for a message (and back with ``from_arrays``)."""
        sizes = np.array([-1 if lv is None else len(lv) for lv in self.levels], dtype=np.int64)
        values = [v for lv in self.levels if lv is not None for v in lv]
        counts = [c for lv in self.levels if lv is not None for c in lv.values()]
        return {
            "rows": np.array([self.rows, self.positives], dtype=np.int64),
            "recorded": self.recorded.astype(np.int64),
            "mean": self.mean.astype(np.float64),
            "m2": self.m2.astype(np.float64),
            "minimum": self.minimum.astype(np.float64),
            "maximum": self.maximum.astype(np.float64),
            "level_sizes": sizes,
            "level_values": np.array(values, dtype=np.float64),
            "level_counts": np.array(counts, dtype=np.int64),
        }

    @staticmethod
    def from_arrays(arrays: Mapping[str, np.ndarray]) -> SiteStatistics:
        values, counts = arrays["level_values"].tolist(), arrays["level_counts"].tolist()
        levels: list[Levels] = []
        start = 0
        for size in arrays["level_sizes"].tolist():
            if size < 0:
                levels.append(None)
                continue
            levels.append(dict(zip(values[start : start + size], counts[start : start + size], strict=True)))
            start += size
        rows, positives = (int(v) for v in arrays["rows"])
        return SiteStatistics(
            rows=rows,
            positives=positives,
            recorded=np.asarray(arrays["recorded"], dtype=np.int64),
            mean=np.asarray(arrays["mean"], dtype=np.float64),
            m2=np.asarray(arrays["m2"], dtype=np.float64),
            minimum=np.asarray(arrays["minimum"], dtype=np.float64),
            maximum=np.asarray(arrays["maximum"], dtype=np.float64),
            levels=tuple(levels),
        )


def _levels_of(values: np.ndarray, max_levels: int) -> Levels:
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) > max_levels:
        return None
    return dict(zip(distinct.tolist(), counts.tolist(), strict=True))


def site_statistics(x: np.ndarray, y: np.ndarray, max_levels: int = MAX_LEVELS) -> SiteStatistics:
    """Of one site's training rows ``x`` (NaN = missing) and labels ``y`` (0/1)."""
    recorded = [column[~np.isnan(column)] for column in np.asarray(x, dtype=np.float64).T]
    mean = np.array([values.mean() if len(values) else 0.0 for values in recorded])
    return SiteStatistics(
        rows=len(x),
        positives=int(np.sum(y == 1)),
        recorded=np.array([len(values) for values in recorded], dtype=np.int64),
        mean=mean,
        m2=np.array([float(((values - m) ** 2).sum()) for values, m in zip(recorded, mean, strict=True)]),
        minimum=np.array([values.min() if len(values) else np.inf for values in recorded]),
        maximum=np.array([values.max() if len(values) else -np.inf for values in recorded]),
        levels=tuple(_levels_of(values, max_levels) for values in recorded),
    )


def _merge_levels(a: Levels, b: Levels) -> Levels:
    if a is None or b is None:
        return None
    merged = dict(a)
    for value, count in b.items():
        merged[value] = merged.get(value, 0) + count
    return merged


def merge_two(a: SiteStatistics, b: SiteStatistics) -> SiteStatistics:
    if a.width != b.width:
        raise ValueError(f"statistics of {a.width} and of {b.width} features cannot be merged")
    n = a.recorded + b.recorded
    share = np.divide(b.recorded, n, out=np.zeros(len(n)), where=n > 0)
    delta = b.mean - a.mean
    return SiteStatistics(
        rows=a.rows + b.rows,
        positives=a.positives + b.positives,
        recorded=n,
        mean=np.where(n > 0, a.mean + delta * share, 0.0),
        m2=a.m2 + b.m2 + delta**2 * a.recorded * share,
        minimum=np.minimum(a.minimum, b.minimum),
        maximum=np.maximum(a.maximum, b.maximum),
        levels=tuple(_merge_levels(la, lb) for la, lb in zip(a.levels, b.levels, strict=True)),
    )


def merge(parts: Iterable[SiteStatistics]) -> SiteStatistics:
    parts = list(parts)
    if not parts:
        raise ValueError("no site statistics to merge")
    merged = parts[0]
    for part in parts[1:]:
        merged = merge_two(merged, part)
    return merged


def _off_mode_at_least(levels: Levels, recorded: int, max_levels: int) -> int:
    """Rows differing from the most common value: exact from the counts, else the lower bound ``max_levels``."""
    if levels is None:
        return max_levels
    return recorded - max(levels.values()) if levels else 0


def preprocessing_from(
    stats: SiteStatistics, min_count: int = MIN_COUNT, max_levels: int = MAX_LEVELS
) -> Preprocessing:
    """What ``fit_preprocessing(min_count=min_count)`` gives on the rows ``stats`` describe."""
    if min_count > max_levels:
        raise ValueError(f"min_count {min_count} > max_levels {max_levels}: the rule could not be decided")
    off_mode = [
        _off_mode_at_least(levels, int(recorded), max_levels)
        for levels, recorded in zip(stats.levels, stats.recorded, strict=True)
    ]
    used = np.array([j for j, off in enumerate(off_mode) if off >= min_count], dtype=np.int64)
    if len(used) == 0:
        used = np.array([j for j, off in enumerate(off_mode) if off > 0], dtype=np.int64)
    some = stats.recorded > 0
    fill = np.where(some, stats.mean, 0.0)
    lower = np.where(some, stats.minimum, 0.0)
    upper = np.where(some, stats.maximum, 0.0)
    missing = stats.rows - stats.recorded
    indicators = np.array([j for j in used if min_count <= missing[j] <= stats.rows - min_count], dtype=np.int64)
    binary = np.array([stats.levels[j] is not None and set(stats.levels[j]) <= {0.0, 1.0} for j in used], dtype=bool)
    # A missing value is filled with the mean: the filled column keeps the mean and adds no squared deviation.
    spread = np.sqrt(stats.m2[used] / max(stats.rows, 1))
    mean = np.where(binary, 0.0, fill[used])
    scale = np.where(binary | (spread <= 1e-12), 1.0, spread)
    return Preprocessing(
        fill=fill, lower=lower, upper=upper, columns=used, indicators=indicators, mean=mean, scale=scale
    )


def positive_weight_of(stats: SiteStatistics) -> float:
    """The train code's class weighting (``fit.positive_weight``) of the pooled labels."""
    return (stats.rows - stats.positives) / stats.positives if stats.positives else 1.0
