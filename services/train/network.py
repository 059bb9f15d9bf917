"""The torch models: an MLP or a logistic regression, and the scorer that carries the preprocessing with it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from services.train.preprocess import Preprocessing


def build_network(n_features: int, family: str, width: int, depth: int, dropout: float) -> nn.Module:
    """Logits ``[N, 1]``. ``logistic`` is a single linear layer (the baseline); ``mlp`` has ``depth`` hidden layers."""
    if family == "logistic" or depth == 0:
        return nn.Sequential(nn.Linear(n_features, 1))
    layers: list[nn.Module] = []
    size = n_features
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(dropout)]
        size = width
    layers.append(nn.Linear(size, 1))
    return nn.Sequential(*layers)


class Scorer(nn.Module):
    """Raw features (NaN = missing) in, probability out: the graph exported to ONNX (``shared/registry.py``)."""

    def __init__(self, preprocessing: Preprocessing, network: nn.Module) -> None:
        super().__init__()
        self.register_buffer("median", torch.tensor(preprocessing.median, dtype=torch.float32))
        self.register_buffer("indicators", torch.tensor(preprocessing.indicators, dtype=torch.int64))
        self.register_buffer("mean", torch.tensor(preprocessing.mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(preprocessing.scale, dtype=torch.float32))
        self.network = network

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(features)
        imputed = torch.where(missing, self.median, features)
        indicators = torch.index_select(missing, 1, self.indicators).to(features.dtype)
        expanded = torch.cat([imputed, indicators], dim=1)
        return torch.sigmoid(self.network((expanded - self.mean) / self.scale)).squeeze(-1)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        self.eval()
        return self(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy().astype(np.float64)
