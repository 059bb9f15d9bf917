"""What a site answers, computed from its own rows only (no I/O: the caller loads the site's ``Dataset``).

The held-out split is train's (``dataset.split`` of the task's test fraction and seed): decided per record within
its (site, label) group, so a site splitting its own rows holds out exactly the rows the pooled model is scored on
there. Statistics and training use the training rows; the held-out metrics the held-out rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from services.train.dataset import Dataset, Splits, split
from services.train.federated.hub import Request, Scalar, preprocessing_of, weight_arrays, weights_in
from services.train.federated.statistics import site_statistics


@dataclass(frozen=True)
class Site:
    name: str
    data: Dataset  # this site's labelled rows, and no other site's

    def __post_init__(self) -> None:
        others = sorted(set(self.data.sites.tolist()) - {self.name})
        if others:
            raise ValueError(f"site {self.name}: holds rows of {', '.join(others)}")

    def splits(self, config: Mapping[str, Scalar]) -> Splits:
        return split(self.data, float(config["test-fraction"]), int(config["seed"]), validation_fraction=0.0)

    def answer(self, request: Request) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """(arrays, metrics) for the hub."""
        if request.kind == "statistics":
            train = self.splits(request.config).train
            return site_statistics(train.x, train.y).to_arrays(), {"num-examples": float(len(train))}
        # Imported here: Flower runs each message in a fresh process, and a statistics answer should not wait
        # for torch (about 5 s on two busy cores).
        from services.train.federated.local_fit import fit_locally, held_out_metrics, trial_config

        splits = self.splits(request.config)
        config = request.config
        trial = trial_config(config)
        preprocessing = preprocessing_of(request.arrays)
        weights = weights_in(request.arrays)
        positive_weight = float(config["positive-weight"])
        held = held_out_metrics(trial, preprocessing, weights, splits.test.x, splits.test.y, positive_weight)
        metrics = {f"held-out-{k}": v for k, v in held.items()}
        if request.kind == "evaluate":
            return {}, {"num-examples": float(len(splits.test)), **metrics}
        train = splits.train
        fitted, loss = fit_locally(
            trial,
            weights,
            preprocessing.apply(train.x),
            train.y,
            epochs=int(config["local-epochs"]),
            positive_weight=positive_weight,
            proximal_mu=float(config["proximal-mu"]),
            seed=int(config["seed"]) * 1000 + request.round,
            optimizer=str(config.get("optimizer", "sgd")),
        )
        return weight_arrays(fitted), {"num-examples": float(len(train)), "train-loss": loss, **metrics}
