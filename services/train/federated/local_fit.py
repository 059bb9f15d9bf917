"""A site's part of a round: the global network trained on its own rows, FedAvg or FedProx (no I/O).

The network, the seeding, the mini-batches and the class-weighted loss are train's own (``network.build_network``,
``fit``): a site's epoch is one of ``fit.train_network``'s epochs, on its rows. Two things differ:

- the positive weight is the pooled one (from the sites' statistics), so averaging the sites' mean losses weighted
  by their rows is the pooled model's loss;
- FedProx adds ``mu/2 · |w - w_global|²`` (Li et al., 2020), which keeps a site of skewed rows near the global
  model during its local epochs; ``mu = 0`` is FedAvg.

Adam starts afresh each round (its moments are a site's own history, never sent).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from services.train.evaluate import roc_auc
from services.train.federated.hub import Scalar
from services.train.fit import BATCH_SIZE, TrialConfig, make_deterministic
from services.train.network import Scorer, build_network
from services.train.preprocess import Preprocessing

Weights = dict[str, np.ndarray]


def trial_config(config: Mapping[str, Scalar]) -> TrialConfig:
    return TrialConfig(
        family=str(config["family"]),
        width=int(config["width"]),
        depth=int(config["depth"]),
        dropout=float(config["dropout"]),
        weight_decay=float(config["weight-decay"]),
        learning_rate=float(config["learning-rate"]),
    )


def model_config(trial: TrialConfig, seed: int, test_fraction: float) -> dict[str, Scalar]:
    """The request config a site's ``trial_config`` and split read."""
    return {
        "family": trial.family,
        "width": trial.width,
        "depth": trial.depth,
        "dropout": trial.dropout,
        "weight-decay": trial.weight_decay,
        "learning-rate": trial.learning_rate,
        "seed": seed,
        "test-fraction": test_fraction,
    }


def network_of(config: TrialConfig, n_inputs: int, weights: Mapping[str, np.ndarray] | None = None) -> nn.Module:
    """train's network for ``config``; with ``weights`` (a state dict as numpy arrays) loaded into it."""
    network = build_network(n_inputs, config.family, config.width, config.depth, config.dropout)
    if weights is not None:
        network.load_state_dict({name: torch.as_tensor(np.asarray(w, dtype=np.float32)) for name, w in weights.items()})
    return network


def weights_of(network: nn.Module) -> Weights:
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in network.state_dict().items()}


def initial_weights(config: TrialConfig, n_inputs: int, seed: int) -> Weights:
    """The global model of round 0: train's initialization under ``seed`` (output layer zero)."""
    make_deterministic(seed)
    return weights_of(network_of(config, n_inputs))


def proximal_term(network: nn.Module, anchor: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``|w - w_global|²`` over every parameter."""
    return sum(
        ((parameter - anchor[name]) ** 2).sum() for name, parameter in network.named_parameters()
    ) or torch.tensor(0.0)


def fit_locally(
    config: TrialConfig,
    weights: Mapping[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    positive_weight: float,
    proximal_mu: float,
    seed: int,
    optimizer: str = "sgd",
) -> tuple[Weights, float]:
    """``x`` preprocessed. The weights after ``epochs`` passes over the rows, and the last epoch's mean loss
    (class-weighted BCE, without the proximal term)."""
    if optimizer == "sgd" and config.learning_rate * proximal_mu >= 2.0:
        # Each step multiplies the distance to the global weights by (1 - lr·mu): beyond 2 it grows every step.
        raise ValueError(f"learning rate {config.learning_rate} × mu {proximal_mu} >= 2: SGD would diverge")
    make_deterministic(seed)
    network = network_of(config, x.shape[1], weights)
    anchor = {name: p.detach().clone() for name, p in network.named_parameters()}
    step = (
        torch.optim.SGD(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        if optimizer == "sgd"
        else torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    )
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    mean_loss = 0.0
    for _ in range(epochs):
        network.train()
        total = 0.0
        for batch in torch.randperm(len(xt), generator=generator).split(BATCH_SIZE):
            step.zero_grad()
            loss = loss_fn(network(xt[batch]).squeeze(-1), yt[batch])
            total += float(loss.detach()) * len(batch)
            if proximal_mu > 0:
                loss = loss + 0.5 * proximal_mu * proximal_term(network, anchor)
            loss.backward()
            step.step()
        mean_loss = total / max(len(xt), 1)
    network.eval()
    return weights_of(network), mean_loss


def scorer_of(config: TrialConfig, preprocessing: Preprocessing, weights: Mapping[str, np.ndarray]) -> Scorer:
    """Raw features in, probability out: what ONNX export takes (``onnx_export.export_onnx``)."""
    network = network_of(config, preprocessing.width, weights)
    network.eval()
    return Scorer(preprocessing, network)


def held_out_metrics(
    config: TrialConfig,
    preprocessing: Preprocessing,
    weights: Mapping[str, np.ndarray],
    x_raw: np.ndarray,
    y: np.ndarray,
    positive_weight: float,
) -> dict[str, float]:
    """Rows, class-weighted loss and (both classes present) AUC of the model on raw held-out rows."""
    p = scorer_of(config, preprocessing, weights).predict(x_raw)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    row_weight = np.where(y == 1, positive_weight, 1.0)
    loss = float(np.mean(row_weight * -(y * np.log(p) + (1 - y) * np.log(1 - p)))) if len(y) else 0.0
    metrics = {"examples": float(len(y)), "loss": loss}
    auc = roc_auc(y, p)
    if auc is not None:
        metrics["auc"] = auc
    return metrics
