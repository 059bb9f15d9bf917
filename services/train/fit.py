"""Training runs: class-weighted loss, fixed seeds, and k-fold cross-validation of every configuration.

A site of 100 rows cannot spare a validation split of 20 rows (one or two of the rarer class) to choose a model and
when to stop on: that choice was noise, and so were the models. Here every training row validates once: ``k``
copies of a configuration train side by side, each on all folds but one, and the released network is then trained
on every row.

- **MLP**: Adam on mini-batches; the number of epochs is the one with the lowest class-weighted loss over all
  out-of-fold rows (stopping ``patience`` epochs after its last improvement), and the refit runs that many.
- **Logistic**: fitted to its penalized optimum by Newton's method, so its weights do not depend on when training
  stopped; the weight decay is its only regularizer. Adam stopped early is no substitute: its first steps move every
  weight at about the same rate whatever its gradient, so a small site's model stopped after a few dozen epochs
  leaned on every feature alike and ranked other hospitals' patients little better than chance (measured in
  docs/train.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from services.train.network import build_network

BATCH_SIZE = 64
IMPROVEMENT = 1e-6
NEWTON_ITERATIONS = 100
NEWTON_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TrialConfig:
    family: str
    width: int
    depth: int
    dropout: float
    weight_decay: float
    learning_rate: float

    def as_dict(self) -> dict[str, float]:
        return {
            "width": float(self.width),
            "depth": float(self.depth),
            "dropout": self.dropout,
            "weight_decay": self.weight_decay,
            "learning_rate": self.learning_rate,
        }


@dataclass(frozen=True)
class CrossValidated:
    """One configuration's cross-validation: the epoch count it chose and the out-of-fold probabilities."""

    epochs: int  # 0 for a logistic (fitted to its optimum)
    loss: float
    out_of_fold: np.ndarray  # probability of every row from the copy that did not train on it


def make_deterministic(seed: int) -> None:
    """Same data + config + seed → same weights: one thread (reduction order), deterministic kernels, seeded RNGs."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def positive_weight(y: np.ndarray) -> float:
    """Class weighting: positives weigh negatives/positives, so both classes count equally in the loss."""
    positives = float(y.sum())
    return (len(y) - positives) / positives if positives else 1.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _weighted_loss(y: np.ndarray, logits: np.ndarray) -> float:
    """The class-weighted BCE the MLPs are trained and stopped on (mean over rows)."""
    weights = np.where(y == 1, positive_weight(y), 1.0)
    return float(np.mean(weights * (np.logaddexp(0.0, logits) - y * logits)))


def fit_logistic(x: np.ndarray, y: np.ndarray, weight_decay: float) -> tuple[np.ndarray, float]:
    """(coefficients, intercept) minimizing the class-weighted mean BCE + ``weight_decay``/2 · |w|²
    (intercept not penalized): Newton's method with step halving, in float64."""
    weights = np.where(y == 1, positive_weight(y), 1.0) / len(y)
    design = np.column_stack([x, np.ones(len(x))])
    penalty = np.full(design.shape[1], weight_decay)
    penalty[-1] = 1e-12  # the intercept is (as good as) unpenalized; the speck keeps the Hessian invertible

    def objective(beta: np.ndarray) -> float:
        z = design @ beta
        return float(weights @ (np.logaddexp(0.0, z) - y * z) + 0.5 * penalty @ beta**2)

    beta = np.zeros(design.shape[1])
    current = objective(beta)
    for _ in range(NEWTON_ITERATIONS):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (weights * (p - y)) + penalty * beta
        hessian = (design * (weights * p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6 and objective(beta - scale * step) > current + 1e-15:
            scale /= 2.0
        beta = beta - scale * step
        previous, current = current, objective(beta)
        if previous - current <= NEWTON_TOLERANCE * max(1.0, abs(current)):
            break
    return beta[:-1], float(beta[-1])


def _logistic_network(coefficients: np.ndarray, intercept: float) -> nn.Module:
    network = build_network(len(coefficients), "logistic", 0, 0, 0.0)
    with torch.no_grad():
        network[-1].weight.copy_(torch.tensor(coefficients, dtype=torch.float32)[None, :])
        network[-1].bias.fill_(intercept)
    network.eval()
    return network


def _adam(network: nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    # fused: the same update in one kernel per step (a fifth faster on CPU), still deterministic.
    return torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)


def train_network(config: TrialConfig, x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int) -> nn.Module:
    """``x`` already preprocessed. A logistic at its optimum; an MLP after exactly ``epochs`` passes over all rows
    (mini-batches in a seeded order). In eval mode."""
    make_deterministic(seed)
    if config.family == "logistic":
        coefficients, intercept = fit_logistic(x, y, config.weight_decay)
        return _logistic_network(coefficients, intercept)
    network = build_network(x.shape[1], config.family, config.width, config.depth, config.dropout)
    optimizer = _adam(network, config)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight(y)))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        network.train()
        for batch in torch.randperm(len(xt), generator=generator).split(BATCH_SIZE):
            optimizer.zero_grad()
            loss_fn(network(xt[batch]).squeeze(-1), yt[batch]).backward()
            optimizer.step()
    network.eval()
    return network


class _Folded(nn.Module):
    """``k`` copies of one network side by side (parameters ``[k, ...]``, inputs ``[k, rows, features]``), so the
    folds train in one pass of batched matrix products instead of ``k`` passes. Adam and weight decay act element by
    element, so each copy learns as it would alone."""

    def __init__(self, network: nn.Sequential, k: int) -> None:
        super().__init__()
        self.steps = nn.ModuleList()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for module in network:
            if isinstance(module, nn.Linear):
                self.weights.append(nn.Parameter(module.weight.detach().T.expand(k, -1, -1).clone()))
                self.biases.append(nn.Parameter(module.bias.detach().expand(k, 1, -1).clone()))
                self.steps.append(nn.Identity())  # a placeholder: the next weight/bias pair
            else:
                self.steps.append(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        linear = 0
        for step in self.steps:
            if isinstance(step, nn.Identity):
                x = torch.baddbmm(self.biases[linear], x, self.weights[linear])
                linear += 1
            else:
                x = step(x)
        return x.squeeze(-1)


def _cross_validate_logistic(config: TrialConfig, x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> CrossValidated:
    logits = np.zeros(len(y))
    for fold in np.unique(folds):
        fit_rows, held_rows = folds != fold, folds == fold
        coefficients, intercept = fit_logistic(x[fit_rows], y[fit_rows], config.weight_decay)
        logits[held_rows] = x[held_rows] @ coefficients + intercept
    return CrossValidated(epochs=0, loss=_weighted_loss(y, logits), out_of_fold=_sigmoid(logits))


def cross_validate(
    config: TrialConfig,
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    *,
    seed: int,
    max_epochs: int,
    patience: int,
    deadline: float | None = None,
) -> CrossValidated:
    """One copy per fold (``folds[i]`` = the fold row i validates). An MLP's copies train in lockstep from the same
    initial weights as the refit; the loss is the class-weighted BCE over every out-of-fold row, and training stops
    ``patience`` epochs after its last improvement (or at the deadline)."""
    if config.family == "logistic":
        return _cross_validate_logistic(config, x, y, folds)
    make_deterministic(seed)
    names = np.unique(folds)
    k, n = len(names), len(y)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    network = build_network(x.shape[1], config.family, config.width, config.depth, config.dropout)
    assert isinstance(network, nn.Sequential)
    model = _Folded(network, k)
    optimizer = _adam(model, config)
    fit_rows = [torch.from_numpy(np.flatnonzero(folds != f)) for f in names]
    fold_weights = torch.tensor([[positive_weight(y[rows.numpy()])] for rows in fit_rows])
    held = torch.from_numpy(np.searchsorted(names, folds))  # row i is validated by copy held[i]
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight(y)))
    generator = torch.Generator().manual_seed(seed)
    widest = max(len(rows) for rows in fit_rows)
    best_loss, best_epoch, best_p = float("inf"), 0, np.full(n, 0.5)
    for epoch in range(1, max_epochs + 1):
        # Each copy's rows in its own random order, padded to the longest (padding masked out of the loss).
        index, mask = torch.zeros(k, widest, dtype=torch.int64), torch.zeros(k, widest)
        for copy_, rows in enumerate(fit_rows):
            index[copy_, : len(rows)] = rows[torch.randperm(len(rows), generator=generator)]
            mask[copy_, : len(rows)] = 1.0
        model.train()
        for start in range(0, widest, BATCH_SIZE):
            batch, weight = index[:, start : start + BATCH_SIZE], mask[:, start : start + BATCH_SIZE]
            optimizer.zero_grad()
            losses = nn.functional.binary_cross_entropy_with_logits(
                model(xt[batch]), yt[batch], pos_weight=fold_weights, reduction="none"
            )
            ((losses * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)).sum().backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(xt.expand(k, n, -1))[held, torch.arange(n)]
            loss = float(loss_fn(logits, yt))
        if loss < best_loss - IMPROVEMENT:
            best_loss, best_epoch, best_p = loss, epoch, torch.sigmoid(logits).numpy().astype(np.float64)
        elif epoch - best_epoch >= patience:
            break
        if deadline is not None and time.monotonic() > deadline:
            break
    return CrossValidated(epochs=max(best_epoch, 1), loss=best_loss, out_of_fold=best_p)
