"""Random search over the task's ``ModelSearch`` space, inside its time budget; selection on the validation split."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from services.train.evaluate import evaluate
from services.train.fit import Fitted, TrialConfig, fit
from shared.tasks import ModelSearch

Progress = Callable[[int, int], None]
"""Called with (trials done, trials planned)."""


def candidates(space: ModelSearch, family: str | None = None) -> list[TrialConfig]:
    """Up to ``space.trials`` distinct points of the grid, in a seeded random order."""
    family = family or space.family
    widths, depths, dropouts = (space.width, space.depth, space.dropout) if family == "mlp" else ([0], [0], [0.0])
    grid = [TrialConfig(family, w, d, dr, wd, lr) for w, d, dr, wd, lr in
            itertools.product(widths, depths, dropouts, space.weight_decay, space.learning_rate)]
    order = np.random.default_rng(space.seed).permutation(len(grid))
    return [grid[i] for i in order[: space.trials]]


def selection_score(metric: str, y: np.ndarray, p: np.ndarray, validation_loss: float) -> float:
    """Higher is better. AUC on a one-class validation split falls back to minus the validation loss."""
    metrics = evaluate(y, p)
    if metric == "brier":
        return -metrics["brier"]
    if metric == "f1":
        return metrics["f1"]
    return metrics.get("auc", -validation_loss)


@dataclass(frozen=True)
class SearchResult:
    config: TrialConfig
    fitted: Fitted
    score: float
    trials_run: int
    trials_planned: int


def random_search(
    space: ModelSearch,
    select_metric: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    family: str | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Trials in order until they are done or the budget is spent (at least one always runs).

    With the budget not reached, the result depends only on data, space and seed; a binding budget can cut the
    search short, so the card records ``trials_run``.
    """
    planned = candidates(space, family)
    deadline = clock() + space.time_budget_seconds
    best: SearchResult | None = None
    runs = 0
    for trial, config in enumerate(planned):
        if best is not None and clock() > deadline:
            break
        fitted = fit(config, x_train, y_train, x_val, y_val, seed=space.seed + trial, max_epochs=space.max_epochs,
                     patience=space.patience, deadline=deadline)
        with torch.no_grad():
            p_val = torch.sigmoid(fitted.network(torch.tensor(x_val, dtype=torch.float32))).squeeze(-1).numpy()
        runs += 1
        score = selection_score(select_metric, y_val, p_val.astype(np.float64), fitted.validation_loss)
        if best is None or score > best.score:
            best = SearchResult(config, fitted, score, runs, len(planned))
        if progress is not None:
            progress(runs, len(planned))
    assert best is not None
    return SearchResult(best.config, best.fitted, best.score, runs, len(planned))
