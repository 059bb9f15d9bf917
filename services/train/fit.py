"""One training run: class-weighted loss, mini-batches, early stopping on the validation split, fixed seeds."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from services.train.network import build_network

BATCH_SIZE = 64


@dataclass(frozen=True)
class TrialConfig:
    family: str
    width: int
    depth: int
    dropout: float
    weight_decay: float
    learning_rate: float

    def as_dict(self) -> dict[str, float]:
        return {"width": float(self.width), "depth": float(self.depth), "dropout": self.dropout,
                "weight_decay": self.weight_decay, "learning_rate": self.learning_rate}


@dataclass(frozen=True)
class Fitted:
    network: nn.Module
    epochs: int
    validation_loss: float


def make_deterministic(seed: int) -> None:
    """Same data + config + seed → same weights: one thread (reduction order), deterministic kernels, seeded RNGs."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def positive_weight(y: np.ndarray) -> float:
    """Class weighting: positives weigh negatives/positives, so both classes count equally in the loss."""
    positives = float(y.sum())
    return (len(y) - positives) / positives if positives else 1.0


def fit(
    config: TrialConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    max_epochs: int,
    patience: int,
    deadline: float | None = None,
) -> Fitted:
    """``x`` already imputed and scaled. Keeps the weights of the epoch with the lowest validation loss."""
    make_deterministic(seed)
    generator = torch.Generator().manual_seed(seed)
    network = build_network(x_train.shape[1], config.family, config.width, config.depth, config.dropout)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight(y_train)))
    xt, yt = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.float32)
    xv, yv = torch.tensor(x_val, dtype=torch.float32), torch.tensor(y_val, dtype=torch.float32)
    best_loss, best_state, best_epoch, epoch = float("inf"), copy.deepcopy(network.state_dict()), 0, 0
    for epoch in range(1, max_epochs + 1):
        network.train()
        for batch in torch.randperm(len(xt), generator=generator).split(BATCH_SIZE):
            optimizer.zero_grad()
            loss_fn(network(xt[batch]).squeeze(-1), yt[batch]).backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            validation_loss = float(loss_fn(network(xv).squeeze(-1), yv)) if len(xv) else 0.0
        if validation_loss < best_loss - 1e-6:
            best_loss, best_state, best_epoch = validation_loss, copy.deepcopy(network.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            break
        if deadline is not None and time.monotonic() > deadline:
            break
    network.load_state_dict(best_state)
    network.eval()
    return Fitted(network=network, epochs=epoch, validation_loss=best_loss)
