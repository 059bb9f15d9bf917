"""The torch models: an MLP or a logistic regression, and the scorer that carries the preprocessing with it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from services.train.preprocess import Preprocessing


def build_network(n_features: int, family: str, width: int, depth: int, dropout: float) -> nn.Module:
    """Logits ``[N, 1]``. ``logistic`` is a single linear layer (the baseline); ``mlp`` has ``depth`` hidden layers.

    The output layer starts at zero, so the untrained network is a constant: training (stopped early by design)
    moves away from "no opinion", not from a random direction. A random output layer left a small site's model,
    stopped after a few dozen epochs, ranking other sites' patients partly by its initial weights."""
    layers: list[nn.Module] = []
    size = n_features
    for _ in range(0 if family == "logistic" else depth):
        layers += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(dropout)]
        size = width
    output = nn.Linear(size, 1)
    nn.init.zeros_(output.weight)
    nn.init.zeros_(output.bias)
    return nn.Sequential(*layers, output)


class Scorer(nn.Module):
    """Raw features (NaN = missing) in, probability out: the graph exported to ONNX (``shared/registry.py``).

    Mirrors ``Preprocessing.apply`` in float32: the fill, clipping to the training range, the used columns scaled,
    the missing indicators appended, then the network."""

    def __init__(self, preprocessing: Preprocessing, network: nn.Module) -> None:
        super().__init__()
        for name in ("fill", "lower", "upper", "mean", "scale"):
            self.register_buffer(name, torch.tensor(getattr(preprocessing, name), dtype=torch.float32))
        self.register_buffer("columns", torch.tensor(preprocessing.columns, dtype=torch.int64))
        self.register_buffer("indicators", torch.tensor(preprocessing.indicators, dtype=torch.int64))
        self.network = network

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(features)
        filled = torch.minimum(torch.maximum(torch.where(missing, self.fill, features), self.lower), self.upper)
        scaled = (torch.index_select(filled, 1, self.columns) - self.mean) / self.scale
        indicators = torch.index_select(missing, 1, self.indicators).to(features.dtype)
        return torch.sigmoid(self.network(torch.cat([scaled, indicators], dim=1))).squeeze(-1)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        self.eval()
        return self(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy().astype(np.float64)
