"""Random search over the task's ``ModelSearch`` space inside its time budget, each point cross-validated.

Every point is scored on ``select_metric`` in each fold (its out-of-fold predictions, ``fit``). The chosen point
follows the one-standard-error rule: the simplest point whose mean fold score is within one standard error of the
best mean. Where the folds cannot tell the points apart, as at a site with six patients of the rarer class, the
search would otherwise pick whichever point the noise favoured, and a different one with every seed.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from services.train.evaluate import evaluate
from services.train.fit import CrossValidated, TrialConfig, cross_validate, train_network
from shared.tasks import ModelSearch

Progress = Callable[[int, int], None]
"""Called with (trials done, trials planned)."""


def candidates(space: ModelSearch, family: str | None = None) -> list[TrialConfig]:
    """Up to ``space.trials`` distinct points of the grid, in a seeded random order. A logistic is fitted to its
    optimum (no learning rate: 0 on its card), so its points are the weight decays."""
    family = family or space.family
    if family == "logistic":
        grid = [TrialConfig(family, 0, 0, 0.0, wd, 0.0) for wd in space.weight_decay]
    else:
        grid = [
            TrialConfig(family, w, d, dr, wd, lr)
            for w, d, dr, wd, lr in itertools.product(
                space.width, space.depth, space.dropout, space.weight_decay, space.learning_rate
            )
        ]
    order = np.random.default_rng(space.seed).permutation(len(grid))
    return [grid[i] for i in order[: space.trials]]


def complexity(config: TrialConfig) -> tuple[float, ...]:
    """Smaller is simpler: a logistic before any MLP, then fewer hidden units, stronger weight decay, more dropout."""
    hidden = 0 if config.family == "logistic" else config.width * config.depth
    return (float(config.family != "logistic"), float(hidden), -config.weight_decay, -config.dropout)


def selection_score(metric: str, y: np.ndarray, p: np.ndarray, loss: float) -> float:
    """Higher is better. AUC over one class only falls back to minus the loss."""
    metrics = evaluate(y, p)
    if metric == "brier":
        return -metrics["brier"]
    if metric == "f1":
        return metrics["f1"]
    return metrics.get("auc", -loss)


def fold_scores(metric: str, y: np.ndarray, folds: np.ndarray, result: CrossValidated) -> np.ndarray:
    """``metric`` on each fold's own out-of-fold rows (a fold holding one class only has no AUC and is skipped;
    with none left, minus the loss)."""
    scores = []
    for fold in np.unique(folds):
        rows = folds == fold
        if metric != "auc" or len(set(y[rows].tolist())) == 2:
            scores.append(selection_score(metric, y[rows], result.out_of_fold[rows], result.loss))
    return np.array(scores) if scores else np.array([-result.loss])


@dataclass(frozen=True)
class Trial:
    config: TrialConfig
    seed: int
    score: float  # mean over the folds
    standard_error: float  # of that mean
    epochs: int


@dataclass(frozen=True)
class SearchResult:
    trials: list[Trial]  # in the order run
    trials_planned: int

    @property
    def trials_run(self) -> int:
        return len(self.trials)

    def best(self, family: str | None = None) -> Trial | None:
        """The one-standard-error choice among the trials (of ``family`` only, when given): the simplest trial
        scoring within one standard error of the top score; the earlier one when two are as simple.

        The standard error is the median of the trials' own: how much a mean fold score wanders is a property of
        the folds (how many rows of each class they hold) more than of the model, and the top trial's own estimate
        is the one most likely to be small by luck."""
        eligible = [t for t in self.trials if family is None or t.config.family == family]
        if not eligible:
            return None
        top = max(eligible, key=lambda t: t.score)
        error = float(np.median([t.standard_error for t in self.trials]))
        close = [t for t in eligible if t.score >= top.score - error]
        return min(close, key=lambda t: complexity(t.config))


def random_search(
    planned: Sequence[TrialConfig],
    select_metric: str,
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    *,
    seed: int,
    max_epochs: int,
    patience: int,
    time_budget_seconds: float,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Trials in order until they are done or the budget is spent (at least one always runs).

    With the budget not reached, the result depends only on data, space and seed; a binding budget can cut the
    search short, so the card records ``trials_run``.
    """
    deadline = clock() + time_budget_seconds
    trials: list[Trial] = []
    for index, config in enumerate(planned):
        if trials and clock() > deadline:
            break
        result = cross_validate(
            config, x, y, folds, seed=seed + index, max_epochs=max_epochs, patience=patience, deadline=deadline
        )
        scores = fold_scores(select_metric, y, folds, result)
        error = float(scores.std(ddof=1) / math.sqrt(len(scores))) if len(scores) > 1 else 0.0
        trials.append(Trial(config, seed + index, float(scores.mean()), error, result.epochs))
        if progress is not None:
            progress(len(trials), len(planned))
    return SearchResult(trials, len(planned))


def refit(trial: Trial, x: np.ndarray, y: np.ndarray) -> nn.Module:
    """The trial's configuration trained on every row (an MLP for the epochs its cross-validation chose)."""
    return train_network(trial.config, x, y, seed=trial.seed, epochs=trial.epochs)
