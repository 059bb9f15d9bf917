"""The hub's preprocessing from the sites' statistics is the preprocessing of the pooled rows."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.train.dataset import Dataset, split
from services.train.federated.statistics import (
    MAX_LEVELS,
    SiteStatistics,
    merge,
    positive_weight_of,
    preprocessing_from,
    site_statistics,
)
from services.train.fit import positive_weight
from services.train.preprocess import Preprocessing, fit_preprocessing


def assert_same(federated: Preprocessing, pooled: Preprocessing) -> None:
    np.testing.assert_array_equal(federated.columns, pooled.columns)
    np.testing.assert_array_equal(federated.indicators, pooled.indicators)
    for name in ("fill", "lower", "upper", "mean", "scale"):
        np.testing.assert_allclose(
            getattr(federated, name), getattr(pooled, name), rtol=1e-11, atol=1e-12, err_msg=name
        )


def per_site(train: Dataset) -> list[SiteStatistics]:
    return [site_statistics(part.x, part.y) for part in (train.at_site(s) for s in train.site_names)]


def test_the_four_hospitals_statistics_give_the_pooled_preprocessing(heart_data: Dataset) -> None:
    train = split(heart_data, 0.25, 7, validation_fraction=0.0).train
    pooled = fit_preprocessing(train.x)
    assert_same(preprocessing_from(merge(per_site(train))), pooled)
    # Not trivially: each hospital alone would fit another one (VA Long Beach barely records major vessels).
    alone = [fit_preprocessing(train.at_site(s).x) for s in train.site_names]
    assert any(not np.array_equal(a.columns, pooled.columns) for a in alone)


def test_the_class_weight_is_the_pooled_rows_one(heart_data: Dataset) -> None:
    train = split(heart_data, 0.25, 7, validation_fraction=0.0).train
    assert positive_weight_of(merge(per_site(train))) == pytest.approx(positive_weight(train.y))


def test_statistics_survive_the_message_encoding(heart_data: Dataset) -> None:
    stats = site_statistics(heart_data.x, heart_data.y)
    again = SiteStatistics.from_arrays(stats.to_arrays())
    assert again.levels == stats.levels and (again.rows, again.positives) == (stats.rows, stats.positives)
    assert_same(preprocessing_from(again), preprocessing_from(stats))


def test_no_array_a_site_sends_is_as_long_as_its_rows(heart_data: Dataset) -> None:
    site = heart_data.at_site("switzerland")
    for name, array in site_statistics(site.x, site.y).to_arrays().items():
        assert array.ndim == 1 and len(array) < len(site), name


def test_merging_is_associative(heart_data: Dataset) -> None:
    a, b, c = per_site(heart_data)[:3]
    left, right = merge([merge([a, b]), c]), merge([a, merge([b, c])])
    assert_same(preprocessing_from(left), preprocessing_from(right))


def test_a_rule_the_counts_cannot_decide_is_refused() -> None:
    stats = site_statistics(np.arange(100.0)[:, None], np.zeros(100))
    with pytest.raises(ValueError, match="min_count"):
        preprocessing_from(stats, min_count=MAX_LEVELS + 1)


def column_of(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "real":
        return rng.normal(100, 20, n).round(1)
    if kind == "binary":
        return (rng.random(n) < rng.random()).astype(float)
    if kind == "levels":
        return rng.integers(0, 4, n).astype(float)
    return np.full(n, 3.0)


@st.composite
def sites(draw: st.DrawFn) -> list[np.ndarray]:
    """2-4 sites of the same features: continuous, coded 0/1, few-valued, constant, often or always missing."""
    width = draw(st.integers(1, 6))
    kinds = draw(st.lists(st.sampled_from(["real", "binary", "levels", "constant"]), min_size=width, max_size=width))
    missing = draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0]), min_size=width, max_size=width))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draw(st.integers(2, 4))):
        n = draw(st.integers(0, 60))
        columns = []
        for kind, share in zip(kinds, missing, strict=True):
            values = column_of(kind, n, rng)
            values[rng.random(n) < share] = np.nan
            columns.append(values)
        out.append(np.column_stack(columns) if n else np.zeros((0, width)))
    return out


@settings(max_examples=60, deadline=None)
@given(sites())
def test_any_sites_statistics_give_the_pooled_preprocessing(parts: list[np.ndarray]) -> None:
    pooled_x = np.concatenate(parts)
    if len(pooled_x) == 0:
        return
    stats = merge(site_statistics(x, np.zeros(len(x))) for x in parts)
    assert_same(preprocessing_from(stats), fit_preprocessing(pooled_x))
