import numpy as np
import pytest

from services.train.dataset import Row, assemble, fingerprint, folds, split
from services.train.preprocess import fit_preprocessing


def rows(n: int = 200) -> list[Row]:
    rng = np.random.default_rng(3)
    return [
        Row(
            f"r{i:04d}",
            ["a", "b"][i % 2],
            [float(rng.normal()), None if i % 5 == 0 else float(i)],
            float(rng.random() < 0.3),
        )
        for i in range(n)
    ]


def test_the_split_depends_on_the_records_not_on_their_order() -> None:
    forward, backward = assemble(["x", "z"], rows()), assemble(["x", "z"], list(reversed(rows())))
    a, b = split(forward, 0.25, seed=7), split(backward, 0.25, seed=7)
    assert list(a.test.record_ids) == list(b.test.record_ids)
    assert fingerprint(a.train) == fingerprint(b.train)
    assert list(split(forward, 0.25, seed=8).test.record_ids) != list(a.test.record_ids)


def test_the_test_split_is_disjoint_and_stratified_per_site_and_label() -> None:
    data = assemble(["x", "z"], rows())
    parts = split(data, 0.25, seed=7)
    ids = [set(p.record_ids) for p in (parts.train, parts.validation, parts.test)]
    assert not (ids[0] & ids[2]) and not (ids[1] & ids[2]) and not (ids[0] & ids[1])
    assert sum(map(len, ids)) == len(data)
    for site in ("a", "b"):
        whole, held = data.at_site(site), parts.test.at_site(site)
        assert abs(held.y.mean() - whole.y.mean()) < 0.03
        assert abs(len(held) / len(whole) - 0.25) < 0.02


def test_folds_are_stratified_balanced_and_independent_of_arrival_order() -> None:
    forward, backward = assemble(["x", "z"], rows()), assemble(["x", "z"], list(reversed(rows())))
    assignment = folds(forward, 5, "f/7")
    assert np.array_equal(assignment, folds(backward, 5, "f/7"))  # both are sorted by record id
    assert not np.array_equal(assignment, folds(forward, 5, "f/8"))
    sizes = np.bincount(assignment, minlength=5)
    assert sizes.max() - sizes.min() <= 1
    for site in ("a", "b"):
        for label in (0.0, 1.0):
            group = assignment[(forward.sites == site) & (forward.y == label)]
            counts = np.bincount(group, minlength=5)
            assert counts.max() - counts.min() <= 1  # every fold validates its share of each site's classes


def test_preprocessing_learns_from_the_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(50, 10, 200)
    train = np.column_stack([a, 2 * a + rng.normal(0, 1, 200), (rng.random(200) < 0.3).astype(float)])
    train[::4, 1] = np.nan  # feature 1 missing in a quarter of the rows
    fitted = fit_preprocessing(train)
    assert list(fitted.columns) == [0, 1, 2] and list(fitted.indicators) == [1]
    out = fitted.apply(train)
    assert out.shape == (200, 4) and np.isfinite(out).all()
    assert np.allclose(out[:, :2].mean(axis=0), 0, atol=1e-9) and np.allclose(out[:, :2].std(axis=0), 1)
    assert set(np.unique(out[:, 2])) == {0.0, 1.0} and set(np.unique(out[:, 3])) == {0.0, 1.0}


def test_nothing_leaves_the_training_range() -> None:
    rng = np.random.default_rng(2)
    train = np.column_stack([rng.uniform(100, 200, 100), rng.uniform(0, 5, 100)])
    fitted = fit_preprocessing(train)
    wild = fitted.impute(np.array([[1000.0, -50.0], [np.nan, np.nan]]))
    assert list(wild[0]) == [train[:, 0].max(), train[:, 1].min()]  # clipped to what the site recorded
    assert wild[1] == pytest.approx(train.mean(axis=0))  # missing: the training mean


def test_a_column_the_site_barely_varies_on_is_left_out_and_cannot_move_the_output() -> None:
    rng = np.random.default_rng(3)
    rare = np.zeros(200)
    rare[:3] = 1.0  # 3 patients of 200: too few to learn a weight from
    vessels = np.full(200, np.nan)
    vessels[:2] = 0.0  # recorded twice: 99 % missing, and constant where recorded
    train = np.column_stack([rng.normal(0, 1, 200), rare, vessels])
    fitted = fit_preprocessing(train)
    assert list(fitted.columns) == [0] and len(fitted.indicators) == 0
    elsewhere = np.array([[0.5, 1.0, 3.0], [0.5, 0.0, np.nan]])  # a site where both are common
    out = fitted.apply(elsewhere)
    assert np.array_equal(out[0], out[1])


def test_a_binary_column_stays_zero_one_instead_of_ten_standard_deviations() -> None:
    rng = np.random.default_rng(4)
    binary = (rng.random(500) < 0.02).astype(float)  # 2 % ones: standardized, a one would sit at about +7
    fitted = fit_preprocessing(np.column_stack([rng.normal(0, 1, 500), binary]))
    assert fitted.apply(np.array([[0.0, 1.0]]))[0, 1] == 1.0
