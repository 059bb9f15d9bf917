import numpy as np

from services.train.dataset import Row, assemble, fingerprint, split
from services.train.preprocess import fit_preprocessing


def rows(n: int = 200) -> list[Row]:
    rng = np.random.default_rng(3)
    return [Row(f"r{i:04d}", ["a", "b"][i % 2], [float(rng.normal()), None if i % 5 == 0 else float(i)],
                float(rng.random() < 0.3)) for i in range(n)]


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


def test_preprocessing_learns_from_the_training_split_only() -> None:
    train = np.array([[1.0, np.nan], [3.0, 10.0], [5.0, 30.0]])
    fitted = fit_preprocessing(train)
    assert list(fitted.median) == [3.0, 20.0]
    assert list(fitted.indicators) == [1]  # only the feature missing in training gets an indicator
    out = fitted.apply(np.array([[np.nan, np.nan], [1000.0, 20.0]]))
    assert out.shape == (2, 3) and np.isfinite(out).all()
    assert np.allclose(fitted.apply(train).mean(axis=0), 0)
