"""Train, evaluate and export one model of a task, per site or pooled (no files, no broker: the caller persists).

The held-out test split is fixed per record (``dataset.split``); the preprocessing is fitted on the training rows,
the search selects by k-fold cross-validation over them (``search``), and only the chosen model ever sees the test
split. For an MLP task the logistic baseline is in the same search: when it cross-validates best, it is released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from services.train.dataset import POOLED, Dataset, fingerprint, folds, split
from services.train.distributions import feature_distributions
from services.train.evaluate import evaluate, roc_auc
from services.train.failures import NotTrainable
from services.train.network import Scorer
from services.train.onnx_export import OPSET, check_parity, export_onnx
from services.train.plots import calibration_png, roc_png
from services.train.preprocess import fit_preprocessing
from services.train.search import candidates, random_search, refit
from shared.schemas.models import FeatureDistribution
from shared.tasks import TaskSpec

MIN_TRAINING_ROWS = 10
CV_FOLDS = 5

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainedModel:
    task: str
    site: str
    feature_names: tuple[str, ...]
    scorer: Scorer
    onnx: bytes
    opset: int
    metrics: dict[str, float]
    cross_site: dict[str, float]
    hyperparameters: dict[str, float]
    data: dict[str, int]
    fingerprint: str
    plots: dict[str, bytes] = field(repr=False)
    test_y: np.ndarray = field(repr=False)
    test_p: np.ndarray = field(repr=False)
    distributions: dict[str, FeatureDistribution] = field(default_factory=dict, repr=False)


def _require_trainable(task: str, site: str, data: Dataset, train: Dataset) -> None:
    if site != POOLED and site not in data.site_names:
        raise NotTrainable(
            f"task {task}: no labelled records from site {site!r} in the training store "
            f"(sites: {', '.join(data.site_names) or 'none'})"
        )
    if len(train) < MIN_TRAINING_ROWS:
        raise NotTrainable(
            f"task {task}, site {site}: {len(train)} training rows, at least {MIN_TRAINING_ROWS} are needed"
        )
    if len(set(train.y.tolist())) < 2:
        raise NotTrainable(f"task {task}, site {site}: the training rows hold one class only")


def fold_count(y: np.ndarray, most: int = CV_FOLDS) -> int:
    """``most`` folds, fewer when the rarer class has fewer rows (each fold should validate one), at least 2."""
    return max(2, min(most, int(y.sum()), int(len(y) - y.sum())))


def train_model(task: TaskSpec, data: Dataset, site: str = POOLED, progress: Progress | None = None) -> TrainedModel:
    """The selected model, scored on the held-out split of ``site`` and of every other site, exported and checked."""
    splits = split(data, task.test_fraction, task.model.seed, validation_fraction=0.0)
    train, test = splits.train.at_site(site), splits.test.at_site(site)
    _require_trainable(task.name, site, data, train)
    preprocessing = fit_preprocessing(train.x)
    x_train = preprocessing.apply(train.x)
    k = fold_count(train.y)

    with_baseline = task.model.family == "mlp"
    every_weight_decay = task.model.model_copy(update={"trials": len(task.model.weight_decay)})
    # The cheap, stable baseline first (one point per weight decay): a search its budget cuts short still has it.
    planned = (candidates(every_weight_decay, "logistic") if with_baseline else []) + candidates(task.model)
    search = random_search(
        planned,
        task.select_metric,
        x_train,
        train.y,
        folds(train, k, f"folds/{task.model.seed}"),
        seed=task.model.seed,
        max_epochs=task.model.max_epochs,
        patience=task.model.patience,
        time_budget_seconds=task.model.time_budget_seconds,
        progress=progress,
    )
    best = search.best()
    assert best is not None  # at least one trial always runs
    scorer = Scorer(preprocessing, refit(best, x_train, train.y))
    test_p = scorer.predict(test.x)
    metrics = evaluate(test.y, test_p)
    metrics.update(
        trials_run=float(search.trials_run), epochs=float(best.epochs), folds=float(k), selection_score=best.score
    )
    baseline = search.best("logistic") if with_baseline else None
    if baseline is not None:
        baseline_scorer = scorer if baseline is best else Scorer(preprocessing, refit(baseline, x_train, train.y))
        baseline_auc = roc_auc(test.y, baseline_scorer.predict(test.x))
        if baseline_auc is not None:
            metrics["baseline_logistic_auc"] = baseline_auc

    cross_site = {}
    for other in data.site_names:
        held_out = splits.test.at_site(other)
        auc = roc_auc(held_out.y, scorer.predict(held_out.x))
        if auc is not None:
            cross_site[other] = auc

    onnx = export_onnx(scorer, len(data.feature_names))
    metrics["onnx_parity_max_abs_diff"] = check_parity(scorer, onnx, test.x)
    indicator = {f.name: f.equals is not None for f in task.features}
    distributions = feature_distributions(
        data.feature_names, train.x, [indicator.get(name, False) for name in data.feature_names]
    )
    title = f"{task.name} · {site} · held-out n={len(test)}"
    return TrainedModel(
        task=task.name,
        site=site,
        feature_names=data.feature_names,
        scorer=scorer,
        onnx=onnx,
        opset=OPSET,
        metrics=metrics,
        cross_site=cross_site,
        hyperparameters={**best.config.as_dict(), "seed": float(task.model.seed)},
        data={
            "train": len(train),
            "validation": 0,
            "test": len(test),
            "train_positives": int(train.y.sum()),
            "test_positives": int(test.y.sum()),
        },
        fingerprint=fingerprint(train),
        plots={"roc.png": roc_png(test.y, test_p, title), "calibration.png": calibration_png(test.y, test_p, title)},
        test_y=test.y,
        test_p=test_p,
        distributions=distributions,
    )
