"""Every fusion rule tried for the leave-one-hospital-out criterion, side by side (research/fuse/README.md).

Same setup as ``heart_evaluation``: each hospital's model from train's trainer on its own records; for each hospital
held out, the three other models score all its records. Weights use only what the other institutions know: the
cards' cross-site AUCs on the *training* sites' held-out test splits (never the held-out hospital's entry). Rules
that need more than a card (reference score distributions, a stacker) take it from those test splits too.

With ``--local`` the held-out hospital validates the incoming models first, as a receiving hospital would: its own
test split (the cards' entry for it) sets the weights, and everything is scored on its *other* records only.

With ``--ceiling`` the held-out hospital's own outcomes are used, to see how much room there is at all: the best
fixed weighting of the three models chosen on all its labels (in-sample: an upper bound no fusion can reach), and
weightings learned from its labels cross-fitted over 5 folds (no record's fused score uses its own label).

    .venv/bin/python -m research.fuse.fusion_alternatives            # seed 7, the shipped task
    .venv/bin/python -m research.fuse.fusion_alternatives 1 2 3 ...  # other training seeds: a summary per rule
    .venv/bin/python -m research.fuse.fusion_alternatives --local 1 2 3 ...
    .venv/bin/python -m research.fuse.fusion_alternatives --ceiling 1 2 3 ...
    .venv/bin/python -m research.fuse.fusion_alternatives --reduced 1 2 3 ...  # with reduced-feature models
    .venv/bin/python -m research.fuse.fusion_alternatives --criteria 1 2 3 ...  # the default against other criteria
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from research.fuse.heart_evaluation import HOSPITALS, heart_dataset
from services.train.dataset import Dataset, split
from services.train.evaluate import roc_auc
from services.train.training import train_model
from shared.tasks import TaskSpec, load_tasks

FLOOR = 0.01


def logits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def average(columns: list[np.ndarray], weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, float) / sum(weights)
    return sum(wi * c for wi, c in zip(w, columns, strict=True))


class Case:
    """One held-out hospital: the three models' scores on it, and what their cards and test splits know.

    ``inputs[m]`` is the share of model ``m``'s inputs each target record has, counting as missing only inputs the
    model never saw missing in training (no missing indicator): how far its answer rests on filled-in values.
    ``pattern_fit[m]`` is the mean log-likelihood, per feature, of each target record's pattern of missing values
    under the missing rates of model ``m``'s training rows (an aggregate a card could carry)."""

    def __init__(
        self,
        held_out: str,
        scores: dict[str, np.ndarray],
        y: np.ndarray,
        sites: np.ndarray,
        in_test: np.ndarray,
        cross_site: dict[str, dict[str, float]],
        recorded: np.ndarray,
        inputs: dict[str, tuple[np.ndarray, np.ndarray]],
        missing_rates: dict[str, np.ndarray],
        local: bool = False,
    ) -> None:
        self.held_out, self.models = held_out, [s for s in HOSPITALS if s != held_out]
        target = (sites == held_out) & ~in_test if local else sites == held_out
        self.y = y[target]
        self.p = [scores[m][target] for m in self.models]
        self.logits = [logits(p) for p in self.p]
        self.inputs = [_share_of_inputs(recorded[target], *inputs[m]) for m in self.models]
        self.pattern_fit = [
            np.where(recorded[target], np.log1p(-missing_rates[m]), np.log(missing_rates[m])).mean(1)
            for m in self.models
        ]
        calibration = (sites == held_out) & in_test
        self.local_auc = [roc_auc(y[calibration], scores[m][calibration]) for m in self.models]
        positives = int(y[calibration].sum())
        self.local_rarer = min(positives, int(calibration.sum()) - positives)
        self.cross_site = cross_site
        self.reference = np.isin(sites, self.models) & in_test  # the training sites' held-out test splits
        self.reference_p = [scores[m][self.reference] for m in self.models]
        self.reference_y = y[self.reference]
        self.own_test = [scores[m][(sites == m) & in_test] for m in self.models]

    def aucs(self, model: str, own: bool = False) -> list[float]:
        return [a for s, a in self.cross_site[model].items() if s != self.held_out and (own or s != model)]

    def skill(self, aggregate: Callable[[list[float]], float] = np.mean, own: bool = False) -> list[float]:
        return [max(float(aggregate(self.aucs(m, own))) - 0.5, FLOOR) for m in self.models]


def _share_of_inputs(recorded: np.ndarray, used: np.ndarray, with_indicator: np.ndarray) -> np.ndarray:
    never_missing = np.setdiff1d(used, with_indicator)
    return 1.0 - (~recorded[:, never_missing]).sum(axis=1) / max(len(used), 1)


def _per_record(c: Case, power: float, on_logits: bool) -> np.ndarray:
    weights = np.array(c.skill())[None, :] * np.column_stack(c.inputs) ** power
    columns = np.column_stack(c.logits if on_logits else c.p)
    return (weights * columns).sum(axis=1) / weights.sum(axis=1)


def _local_skill(c: Case, prior_records: float = 0.0) -> list[float]:
    """Skill at the held-out hospital from its own test split, pulled towards the other sites' mean by
    ``prior_records`` (the split counts as many records as its rarer class)."""
    n = c.local_rarer
    own = [a if a is not None else 0.5 for a in c.local_auc]
    return [
        max((n * a + prior_records * float(np.mean(c.aucs(m)))) / (n + prior_records) - 0.5, FLOOR)
        if n + prior_records > 0
        else FLOOR
        for a, m in zip(own, c.models, strict=True)
    ]


def _ranks(reference: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(reference), p, side="right") / len(reference)


def _z(reference: np.ndarray, p: np.ndarray) -> np.ndarray:
    r = logits(reference)
    return (logits(p) - r.mean()) / r.std()


def _stacked(c: Case, non_negative: bool) -> np.ndarray:
    x, x_target = np.column_stack([logits(p) for p in c.reference_p]), np.column_stack(c.logits)
    if not non_negative:
        return LogisticRegression(C=1.0).fit(x, c.reference_y).predict_proba(x_target)[:, 1]

    def loss(w: np.ndarray) -> float:
        z = x @ np.exp(w[:-1]) + w[-1]
        return float(np.sum(np.logaddexp(0, z) - c.reference_y * z))

    w = minimize(loss, np.zeros(x.shape[1] + 1), method="Nelder-Mead").x
    return x_target @ np.exp(w[:-1])


def _separations(columns: list[np.ndarray]) -> np.ndarray:
    """Each model's class separation on the target records, up to a common factor, from the covariances between the
    models alone (no labels): if the models' errors are independent given the diagnosis, cov(i, j) = k·dᵢ·dⱼ, so
    dᵢ = sqrt(cov(i, j)·cov(i, l) / cov(j, l)) (the spectral meta-learner's identity, Parisi et al. 2014)."""
    cov = np.cov(np.vstack(columns))
    out = []
    for i in range(len(columns)):
        j, m = (k for k in range(len(columns)) if k != i)
        ratio = cov[i, j] * cov[i, m] / cov[j, m] if cov[j, m] > 1e-12 else 0.0
        out.append(float(np.sqrt(ratio)) if ratio > 0 else 1e-3)
    return np.array(out)


def _agreement(c: Case, spectral: bool) -> np.ndarray:
    """Logit average weighted by what the models' agreement on the receiving hospital's records says of them."""
    columns = c.logits
    if spectral:
        weights = list(_separations(columns))
    else:  # correlation with the mean of the others
        weights = [
            max(
                float(np.corrcoef(columns[i], np.mean([x for k, x in enumerate(columns) if k != i], axis=0))[0, 1]),
                1e-3,
            )
            for i in range(len(columns))
        ]
    return average([_z(p, p) for p in c.p], weights)  # each standardized over the hospital's own records


def _pattern_gated(c: Case, sharpness: float, per_record: bool) -> np.ndarray:
    """Logit average, each weight × exp(sharpness × how well the record's missing values fit the model's site)."""
    fit = np.column_stack(c.pattern_fit)
    if not per_record:
        fit = np.broadcast_to(fit.mean(axis=0), fit.shape)
    weights = np.array(c.skill())[None, :] * np.exp(sharpness * (fit - fit.max(axis=1, keepdims=True)))
    return (weights * np.column_stack(c.logits)).sum(axis=1) / weights.sum(axis=1)


RULES: dict[str, Callable[[Case], np.ndarray]] = {
    "weighted avg, weight AUC − 0.5 (default)": lambda c: average(c.p, c.skill()),
    "weighted avg, weight raw AUC": lambda c: average(c.p, [np.mean(c.aucs(m)) for m in c.models]),
    "weighted avg, equal weights": lambda c: average(c.p, [1.0] * 3),
    "weighted avg, weight (AUC − 0.5)²": lambda c: average(c.p, [s**2 for s in c.skill()]),
    "weighted avg, skill incl. own test split": lambda c: average(c.p, c.skill(own=True)),
    "weighted avg, worst-site skill": lambda c: average(c.p, c.skill(np.min)),
    "logit avg, weight AUC − 0.5": lambda c: average(c.logits, c.skill()),
    "logit avg, equal weights": lambda c: average(c.logits, [1.0] * 3),
    "median (= trimmed mean of 3)": lambda c: np.median(np.vstack(c.p), axis=0),
    "rank avg (ranks within own test split)": lambda c: average(
        [_ranks(r, p) for r, p in zip(c.own_test, c.p, strict=True)], c.skill()
    ),
    "rank avg (ranks within training sites' test splits)": lambda c: average(
        [_ranks(r, p) for r, p in zip(c.reference_p, c.p, strict=True)], c.skill()
    ),
    "standardized-logit avg (training sites' test splits)": lambda c: average(
        [_z(r, p) for r, p in zip(c.reference_p, c.p, strict=True)], c.skill()
    ),
    "stacking: logistic on logits (training sites' test splits)": lambda c: _stacked(c, non_negative=False),
    "stacking: non-negative weights (same data)": lambda c: _stacked(c, non_negative=True),
    "no fusion: the model cards rank first": lambda c: c.p[int(np.argmax(c.skill()))],
    "weighted avg, weight × share of inputs recorded": lambda c: _per_record(c, 1.0, on_logits=False),
    "logit avg, weight × (share of inputs recorded)²": lambda c: _per_record(c, 2.0, on_logits=True),
    "logit avg, weights from the models' agreement at the hospital (spectral, no labels)": lambda c: _agreement(
        c, spectral=True
    ),
    "logit avg, weight = correlation with the other models at the hospital": lambda c: _agreement(c, spectral=False),
    "logit avg, weight × fit of the record's missing values to the model's site (sharpness 3)": lambda c: (
        _pattern_gated(c, 3.0, per_record=True)
    ),
    "logit avg, weight × fit of the hospital's missing values to the model's site (sharpness 3)": lambda c: (
        _pattern_gated(c, 3.0, per_record=False)
    ),
}
LOCAL_RULES: dict[str, Callable[[Case], np.ndarray]] = {
    "weighted avg, skill on the hospital's own test split": lambda c: average(c.p, _local_skill(c)),
    "weighted avg, own-split skill shrunk to the cards' (10 records)": lambda c: average(c.p, _local_skill(c, 10)),
    "logit avg, own-split skill": lambda c: average(c.logits, _local_skill(c)),
    "no fusion: the model best on the own test split": lambda c: c.p[int(np.argmax(_local_skill(c)))],
}


# The tests many hospitals do not do (angiography, thallium scan, ST slope on exercise ECG): ``--reduced`` trains
# each hospital a second model without them, used for the records that lack any of them.
ROUTINELY_MISSING = ("st_slope", "major_vessels", "thallium")


def _reduced_feature_scores(task: TaskSpec, data: Dataset) -> dict[str, np.ndarray]:
    blanked = [i for i, name in enumerate(data.feature_names) if name.startswith(ROUTINELY_MISSING)]
    without = dataclasses.replace(data, x=data.x.copy())
    without.x[:, blanked] = np.nan
    lacks = np.isnan(data.x[:, blanked]).any(axis=1)
    return {
        s: np.where(
            lacks,
            train_model(task, without, s).scorer.predict(without.x),
            train_model(task, data, s).scorer.predict(data.x),
        )
        for s in HOSPITALS
    }


def cases(seed: int, local: bool = False, reduced: bool = False) -> list[Case]:
    task = load_tasks()["heart_disease"]
    task = task.model_copy(update={"model": task.model.model_copy(update={"seed": seed})})
    data = heart_dataset(task)
    models = {s: train_model(task, data, s) for s in HOSPITALS}
    in_test = np.isin(data.record_ids, split(data, task.test_fraction, seed).test.record_ids)
    scores = {s: m.scorer.predict(data.x) for s, m in models.items()}
    cross_site = {s: m.cross_site for s, m in models.items()}
    if reduced:  # the scores and the cards' cross-site AUCs are the combined scorer's
        scores = _reduced_feature_scores(task, data)
        tests = {o: (data.sites == o) & in_test for o in HOSPITALS}
        cross_site = {s: {o: roc_auc(data.y[rows], scores[s][rows]) for o, rows in tests.items()} for s in HOSPITALS}
    inputs = {s: (m.scorer.columns.numpy(), m.scorer.indicators.numpy()) for s, m in models.items()}
    missing = np.isnan(data.x)
    training_rows = {s: (data.sites == s) & ~in_test for s in HOSPITALS}
    missing_rates = {s: (missing[rows].sum(axis=0) + 1) / (rows.sum() + 2) for s, rows in training_rows.items()}
    return [
        Case(h, scores, data.y, data.sites, in_test, cross_site, ~missing, inputs, missing_rates, local)
        for h in HOSPITALS
    ]


MEAN_SINGLE = "(for reference: the mean single model)"


def margins(seed: int, local: bool = False, reduced: bool = False) -> dict[str, list[tuple[float, float]]]:
    """Rule -> per held-out hospital (fused AUC, fused AUC − best single other model's AUC)."""
    rules = {**RULES, **LOCAL_RULES} if local else RULES
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in [*rules, MEAN_SINGLE]}
    for case in cases(seed, local, reduced):
        single = [roc_auc(case.y, p) for p in case.p]
        best = max(single)
        for name, rule in rules.items():
            auc = roc_auc(case.y, rule(case))
            out[name].append((auc, auc - best))
        out[MEAN_SINGLE].append((float(np.mean(single)), float(np.mean(single)) - best))
    return out


def summary_row(name: str, d: np.ndarray) -> str:
    """A table row from fused − best margins ``d[seed, held-out hospital]``: rows ≥ 0, per hospital, mean, worst."""
    per_hospital = ", ".join(f"{h} {int((d[:, i] >= 0).sum())}" for i, h in enumerate(HOSPITALS))
    return f"| {name} | {int((d >= 0).sum())} | {per_hospital} | {d.mean():+.3f} | {d.min():+.3f} |"


GRID = [(a, b, 1.0 - a - b) for a in np.arange(0.0, 1.0001, 0.05) for b in np.arange(0.0, 1.0001 - a, 0.05)]


def _cross_fitted(c: Case, learn: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """Scores from a fusion learned on the hospital's other folds' outcomes (5 folds, stratified)."""
    x, out = np.column_stack(c.logits), np.zeros(len(c.y))
    for fit_rows, score_rows in StratifiedKFold(5, shuffle=True, random_state=0).split(x, c.y):
        out[score_rows] = learn(x[fit_rows], c.y[fit_rows])(x[score_rows])
    return out


def _local_weights(power: float) -> Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    def learn(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        w = np.array([max(roc_auc(y, x[:, i]) - 0.5, FLOOR) ** power for i in range(x.shape[1])])
        return lambda z: z @ (w / w.sum())

    return learn


def _local_stacker(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return LogisticRegression(C=0.1).fit(x, y).decision_function


def _local_pick(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    best = int(np.argmax([roc_auc(y, x[:, i]) for i in range(x.shape[1])]))
    return lambda z: z[:, best]


CEILING_RULES = {
    "logit avg, weight AUC − 0.5 at the hospital": _local_weights(1.0),
    "logit avg, weight (AUC − 0.5)² at the hospital": _local_weights(2.0),
    "stacking: logistic on logits at the hospital": _local_stacker,
    "no fusion: the model best at the hospital": _local_pick,
}


def ceiling(seeds: list[int], reduced: bool = False) -> None:
    """Per held-out hospital: the best fixed weighting on its own labels (in-sample) and cross-fitted local rules."""
    rows: dict[str, list[str]] = {h: [] for h in HOSPITALS}
    local: dict[str, list[float]] = {name: [] for name in CEILING_RULES}
    for seed in seeds:
        for c in cases(seed, reduced=reduced):
            best = max(roc_auc(c.y, p) for p in c.p)
            x = np.column_stack(c.logits)
            auc, weights = max(((roc_auc(c.y, x @ np.array(w)), w) for w in GRID), key=lambda t: t[0])
            shares = ", ".join(f"{m} {w:.2f}" for m, w in zip(c.models, weights, strict=True))
            rows[c.held_out].append(f"{seed}: {auc - best:+.3f} ({shares})")
            for name, learn in CEILING_RULES.items():
                local[name].append(roc_auc(c.y, _cross_fitted(c, learn)) - best)
    print(
        "Best fixed weighting of the logits on the held-out hospital's own labels, in-sample, minus the best single "
        "model (weights):"
    )
    for hospital, lines in rows.items():
        print(f"- {hospital}: " + "; ".join(lines))
    print(
        f"\n| learned from the hospital's outcomes, cross-fitted | rows ≥ best (of {4 * len(seeds)}) "
        "| per held-out hospital | mean | worst |\n|---|---|---|---|---|"
    )
    for name, margins_ in local.items():
        print(summary_row(name, np.array(margins_).reshape(len(seeds), len(HOSPITALS))))


def criteria(seeds: list[int], resamples: int = 1000) -> None:
    """How often the default fusion meets the issue's criterion and weaker ones, with the paired bootstrap of
    fused − best single (resampling the held-out hospital's patients)."""
    rng = np.random.default_rng(0)
    counts = {
        "fused ≥ best single": 0,
        "fused > mean single": 0,
        "fused ≥ second-best single": 0,
        "fused ≥ best − 0.03": 0,
        "95 % bootstrap interval of fused − best reaches 0": 0,
    }
    rows = 0
    for seed in seeds:
        for c in cases(seed):
            fused = RULES["weighted avg, weight AUC − 0.5 (default)"](c)
            single = [roc_auc(c.y, p) for p in c.p]
            best, auc = int(np.argmax(single)), roc_auc(c.y, fused)
            differences = []
            for _ in range(resamples):
                i = rng.integers(0, len(c.y), len(c.y))
                if c.y[i].min() != c.y[i].max():
                    differences.append(roc_auc(c.y[i], fused[i]) - roc_auc(c.y[i], c.p[best][i]))
            met = [
                auc >= single[best],
                auc > np.mean(single),
                auc >= sorted(single)[-2],
                auc >= single[best] - 0.03,
                np.percentile(differences, 97.5) >= 0,
            ]
            for name, ok in zip(counts, met, strict=True):
                counts[name] += bool(ok)
            rows += 1
    print(f"| criterion (default fusion, seeds {', '.join(map(str, seeds))}) | rows met (of {rows}) |\n|---|---|")
    for name, count in counts.items():
        print(f"| {name} | {count} |")


def main(argv: list[str]) -> None:
    """The command line in the module's docstring: training seeds and flags in ``argv``, tables on stdout."""
    local, reduced = "--local" in argv, "--reduced" in argv
    seeds = [int(a) for a in argv if not a.startswith("--")] or [7]
    if "--ceiling" in argv:
        ceiling(seeds, reduced)
        return
    if "--criteria" in argv:
        criteria(seeds)
        return
    runs = {seed: margins(seed, local, reduced) for seed in seeds}
    names = list(runs[seeds[0]])
    if len(seeds) == 1:
        print("| rule | " + " | ".join(HOSPITALS) + " | ≥ best single in every row? |\n|---|---|---|---|---|---|")
        for name, row in runs[seeds[0]].items():
            print(
                f"| {name} | "
                + " | ".join(f"{a:.3f} ({d:+.3f})" for a, d in row)
                + f" | {'yes' if all(d >= 0 for _, d in row) else 'no'} |"
            )
    else:
        print(
            f"| rule | rows fused ≥ best single (of {4 * len(seeds)}) | per held-out hospital | mean fused − best "
            "| worst |"
        )
        print("|---|---|---|---|---|")
        for name in names:
            print(summary_row(name, np.array([[m for _, m in runs[seed][name]] for seed in seeds])))


if __name__ == "__main__":
    main(sys.argv[1:])
