"""Train, evaluate and export one model of a task, per site or pooled (no files, no broker: the caller persists).

The held-out test split is fixed per record (``dataset.split``); the preprocessing is fitted on the training
split, the search selects on the validation split, and only the chosen model ever sees the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from services.train.dataset import POOLED, Dataset, fingerprint, split
from services.train.evaluate import evaluate, roc_auc
from services.train.failures import NotTrainable
from services.train.network import Scorer
from services.train.onnx_export import OPSET, check_parity, export_onnx
from services.train.plots import calibration_png, roc_png
from services.train.preprocess import fit_preprocessing
from services.train.search import random_search
from shared.tasks import TaskSpec

MIN_TRAINING_ROWS = 10
BASELINE_TRIALS = 2

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


def _require_trainable(task: str, site: str, data: Dataset, train: Dataset) -> None:
    if site != POOLED and site not in data.site_names:
        raise NotTrainable(f"task {task}: no labelled records from site {site!r} in the training store "
                           f"(sites: {', '.join(data.site_names) or 'none'})")
    if len(train) < MIN_TRAINING_ROWS:
        raise NotTrainable(f"task {task}, site {site}: {len(train)} training rows, at least {MIN_TRAINING_ROWS} "
                           "are needed")
    if len(set(train.y.tolist())) < 2:
        raise NotTrainable(f"task {task}, site {site}: the training rows hold one class only")


def train_model(task: TaskSpec, data: Dataset, site: str = POOLED, progress: Progress | None = None) -> TrainedModel:
    """The selected model, scored on the held-out split of ``site`` and of every other site, exported and checked."""
    splits = split(data, task.test_fraction, task.model.seed)
    train, validation, test = (part.at_site(site) for part in (splits.train, splits.validation, splits.test))
    _require_trainable(task.name, site, data, train)
    preprocessing = fit_preprocessing(train.x)
    x_train, x_val = preprocessing.apply(train.x), preprocessing.apply(validation.x)

    baseline_space = task.model.model_copy(update={"trials": BASELINE_TRIALS})
    with_baseline = task.model.family == "mlp"
    planned = task.model.trials + (BASELINE_TRIALS if with_baseline else 0)

    def report(done: int, _: int, offset: int = 0) -> None:
        if progress is not None:
            progress(offset + done, planned)

    best = random_search(task.model, task.select_metric, x_train, train.y, x_val, validation.y, progress=report)
    scorer = Scorer(preprocessing, best.fitted.network)
    test_p = scorer.predict(test.x)
    metrics = evaluate(test.y, test_p)
    metrics.update(trials_run=float(best.trials_run), epochs=float(best.fitted.epochs))
    if with_baseline:
        baseline = random_search(baseline_space, task.select_metric, x_train, train.y, x_val, validation.y,
                                 family="logistic",
                                 progress=lambda d, t: report(d, t, offset=best.trials_run))
        baseline_auc = roc_auc(test.y, Scorer(preprocessing, baseline.fitted.network).predict(test.x))
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
    title = f"{task.name} · {site} · held-out n={len(test)}"
    training_data = Dataset.concat(train, validation)
    return TrainedModel(
        task=task.name, site=site, feature_names=data.feature_names, scorer=scorer, onnx=onnx, opset=OPSET,
        metrics=metrics, cross_site=cross_site,
        hyperparameters={**best.config.as_dict(), "seed": float(task.model.seed)},
        data={"train": len(train), "validation": len(validation), "test": len(test),
              "train_positives": int(train.y.sum()), "test_positives": int(test.y.sum())},
        fingerprint=fingerprint(training_data),
        plots={"roc.png": roc_png(test.y, test_p, title), "calibration.png": calibration_png(test.y, test_p, title)},
        test_y=test.y, test_p=test_p,
    )
