"""research/fuse/fusion_alternatives.py on a synthetic input: every rule, the ceiling, the criteria and the command
line's tables, in a few seconds.

The real run trains twelve models per seed (about 35 s for one); here each hospital's "model" is a noisy score
whose class separation is known, so the rules can be checked against what they must find. The models' training
itself is what tests/unit/fuse/test_heart_evaluation.py runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from research.fuse import fusion_alternatives as alternatives
from research.fuse.heart_evaluation import HOSPITALS
from services.train.evaluate import roc_auc

SEPARATION = {"cleveland": 2.0, "hungary": 1.5, "va-long-beach": 0.4, "switzerland": 0.9}
PER_HOSPITAL, FEATURES = 200, 6


def synthetic_cases(seed: int, local: bool = False, reduced: bool = False) -> list[alternatives.Case]:
    """Four hospitals of 200 records; model m's logit is separation(m)·(2y − 1) + independent noise, and cards carry
    its AUC on every site's test quarter, as train's do."""
    rng = np.random.default_rng(seed)
    n = PER_HOSPITAL * len(HOSPITALS)
    sites = np.repeat(HOSPITALS, PER_HOSPITAL)
    y = (np.arange(n) % 3 != 0).astype(float)  # two positives in three, at every hospital and in every test split
    in_test = np.arange(n) % 4 == 0
    scores = {m: 1 / (1 + np.exp(-(d * (2 * y - 1) + rng.normal(0, 1.5, n)))) for m, d in SEPARATION.items()}
    tests = {h: (sites == h) & in_test for h in HOSPITALS}
    cross_site = {m: {h: roc_auc(y[rows], scores[m][rows]) for h, rows in tests.items()} for m in HOSPITALS}
    recorded = rng.random((n, FEATURES)) > 0.2
    inputs = {m: (np.arange(FEATURES), np.array([0, 1])) for m in HOSPITALS}
    missing_rates = {m: np.full(FEATURES, 0.2) for m in HOSPITALS}
    return [
        alternatives.Case(h, scores, y, sites, in_test, cross_site, recorded, inputs, missing_rates, local)
        for h in HOSPITALS
    ]


def test_every_rule_scores_every_record_and_ranks_them_better_than_the_weakest_model() -> None:
    rules = {**alternatives.RULES, **alternatives.LOCAL_RULES}
    for case in synthetic_cases(1, local=True):
        weakest = min(roc_auc(case.y, p) for p in case.p)
        for name, rule in rules.items():
            fused = np.asarray(rule(case), dtype=float)
            assert fused.shape == case.y.shape and np.isfinite(fused).all(), (name, case.held_out)
            assert roc_auc(case.y, fused) >= weakest - 0.02, (name, case.held_out)
        for name, learn in alternatives.CEILING_RULES.items():
            # cross-fitted: each fold's scores come from its own fit (picking the best model may pick another one
            # per fold, whose scales differ), so only better than chance is promised
            fused = alternatives._cross_fitted(case, learn)
            assert np.isfinite(fused).all() and roc_auc(case.y, fused) > 0.6, (name, case.held_out)


def test_the_default_weights_follow_the_cards_and_never_use_the_held_out_hospital() -> None:
    case = synthetic_cases(2)[0]  # cleveland held out: hungary, va-long-beach, switzerland
    assert case.models == ["hungary", "va-long-beach", "switzerland"]
    assert all("cleveland" not in case.aucs(m) and m not in case.aucs(m) for m in case.models)
    skill = case.skill()
    assert skill[0] > skill[2] > skill[1] > alternatives.FLOOR  # separations 1.5 > 0.9 > 0.4
    np.testing.assert_allclose(alternatives.average([np.ones(3), np.zeros(3)], [3.0, 1.0]), np.full(3, 0.75))


def test_the_spectral_identity_recovers_each_models_separation_from_agreement_alone() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(20_000) < 0.5
    separations = np.array([2.0, 1.0, 0.5])
    columns = [d * (2 * y - 1) + rng.normal(0, 1, len(y)) for d in separations]
    found = alternatives._separations(columns)
    np.testing.assert_allclose(found / found[0], separations / separations[0], atol=0.05)


@pytest.fixture
def synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alternatives, "cases", synthetic_cases)


@pytest.mark.usefixtures("synthetic")
def test_the_command_line_prints_a_table_row_per_rule(capsys: pytest.CaptureFixture) -> None:
    alternatives.main([])
    seed_table = capsys.readouterr().out.splitlines()
    assert seed_table[0] == "| rule | " + " | ".join(HOSPITALS) + " | ≥ best single in every row? |"
    assert [line.split(" | ")[0][2:] for line in seed_table[2:]] == [*alternatives.RULES, alternatives.MEAN_SINGLE]

    alternatives.main(["--local", "1", "2"])
    summary = capsys.readouterr().out.splitlines()
    assert "(of 8)" in summary[0]
    rows = {line.split(" | ")[0][2:]: line for line in summary[2:]}
    assert set(rows) == {*alternatives.RULES, *alternatives.LOCAL_RULES, alternatives.MEAN_SINGLE}
    # the mean single model is never better than the best one: 0 rows of 8, a negative mean
    assert rows[alternatives.MEAN_SINGLE].split(" | ")[1] == "0"

    alternatives.main(["--ceiling", "1"])
    ceiling = capsys.readouterr().out
    assert all(f"- {h}: 1: +" in ceiling for h in HOSPITALS)  # in-sample, the best weighting never loses
    assert all(name in ceiling for name in alternatives.CEILING_RULES)


@pytest.mark.usefixtures("synthetic")
def test_the_criteria_are_met_at_least_as_often_as_the_strictest(capsys: pytest.CaptureFixture) -> None:
    alternatives.criteria([1], resamples=200)
    counts = {
        line.split(" | ")[0][2:]: int(line.rstrip(" |").split(" | ")[1])
        for line in capsys.readouterr().out.splitlines()[2:]
    }
    assert list(counts) == [
        "fused ≥ best single",
        "fused > mean single",
        "fused ≥ second-best single",
        "fused ≥ best − 0.03",
        "95 % bootstrap interval of fused − best reaches 0",
    ]
    strictest = counts["fused ≥ best single"]
    assert all(strictest <= count <= 4 for count in counts.values())
