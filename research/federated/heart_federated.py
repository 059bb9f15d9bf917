"""Held-out AUC of the central pooled model against federated FedAvg and FedProx, four UCI heart-disease hospitals.

(a) central: train's own trainer (``services.train.training.train_model``, site ``pooled``: the search, the
logistic baseline, the refit) on the pooled training rows; (b) federated: each hospital a site holding only its own
rows (``services.train.federated``), the preprocessing fitted from the sites' statistics, ``ROUNDS`` rounds of
FedAvg or FedProx. Both are scored on the same held-out rows: train's split of the same seed (per record, so a
site's own split holds out exactly its part of the pooled one). The seed moves the split and the initialization.

Run ``.venv/bin/python -m research.federated.heart_federated [SEEDS…]`` (in-process sites, about 30 s a seed on
2 cores) or with ``--flower`` (each federated model through real Flower processes: a SuperLink, four SuperNodes,
``flwr run``; minutes a seed). Prints the table of docs/federated.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.train.dataset import Dataset, split
from services.train.evaluate import roc_auc
from services.train.federated.hub import Plan, federate
from services.train.federated.in_process import InProcessTransport
from services.train.federated.local_fit import initial_weights, model_config, scorer_of
from services.train.federated.site import Site
from services.train.fit import TrialConfig
from services.train.onnx_export import export_onnx, onnx_probabilities
from services.train.training import train_model
from shared.tasks import TaskSpec, load_tasks
from tests.support.factories.heart import heart_dataset

SEEDS = (1, 2, 3, 4, 5, 6, 7)
ROUNDS, LOCAL_EPOCHS, FEDPROX_MU = 40, 2, 0.1
MODEL = TrialConfig("logistic", 0, 0, 0.0, 0.01, 0.3)  # train's pooled release for this task; SGD learning rate
STRATEGIES = {"fedavg": 0.0, "fedprox": FEDPROX_MU}


@dataclass(frozen=True)
class Row:
    seed: int
    central: float
    central_model: str
    federated: dict[str, float]  # strategy → held-out AUC of the ONNX graph
    seconds: dict[str, float]

    def gap(self, strategy: str) -> float:
        return self.federated[strategy] - self.central


def with_seed(task: TaskSpec, seed: int) -> TaskSpec:
    return task.model_copy(update={"model": task.model.model_copy(update={"seed": seed})})


def run_config(seed: int, mu: float, test_fraction: float, output: Path) -> dict[str, object]:
    return {
        "rounds": ROUNDS,
        "min-sites": 4,
        "local-epochs": LOCAL_EPOCHS,
        "proximal-mu": mu,
        "seed": seed,
        "test-fraction": test_fraction,
        "final-evaluation": False,
        "output-dir": str(output),
    }


def federated_onnx(data: Dataset, seed: int, mu: float, test_fraction: float, rounds: int = ROUNDS) -> bytes:
    sites = {name: Site(name, data.at_site(name)) for name in data.site_names}
    fed = federate(
        InProcessTransport(sites),
        Plan(rounds=rounds, min_sites=len(sites), local_epochs=LOCAL_EPOCHS, proximal_mu=mu, final_evaluation=False),
        lambda n: initial_weights(MODEL, n, seed),
        {**model_config(MODEL, seed, test_fraction), "optimizer": "sgd"},
    )
    return export_onnx(scorer_of(MODEL, fed.preprocessing, fed.weights), len(data.feature_names))


def flower_onnx(data: Dataset, seed: int, mu: float, test_fraction: float) -> bytes:
    from services.train.federated.flower_app import save_site
    from services.train.federated.local_federation import LocalFederation

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {}
        for name in data.site_names:
            files[name] = root / f"{name}.npz"
            save_site(data.at_site(name), files[name])
        with LocalFederation(root / "processes", files) as federation:
            output = federation.run(run_config(seed, mu, test_fraction, root / "out"), timeout=1800)
        return (output / "model.onnx").read_bytes()


def compare(task: TaskSpec, data: Dataset, seed: int, flower: bool = False) -> Row:
    task = with_seed(task, seed)
    test = split(data, task.test_fraction, seed, validation_fraction=0.0).test
    started = time.monotonic()
    central = train_model(task, data)
    seconds = {"central": time.monotonic() - started}
    chosen = central.hyperparameters
    label = "logistic" if chosen["width"] == 0 else f"MLP {chosen['width']:.0f} × {chosen['depth']:.0f}"
    federated = {}
    for strategy, mu in STRATEGIES.items():
        started = time.monotonic()
        onnx = (flower_onnx if flower else federated_onnx)(data, seed, mu, task.test_fraction)
        seconds[strategy] = time.monotonic() - started
        auc = roc_auc(test.y, onnx_probabilities(onnx, test.x))
        assert auc is not None
        federated[strategy] = auc
    return Row(seed, central.metrics["auc"], f"{label}, wd {chosen['weight_decay']:g}", federated, seconds)


def markdown(rows: list[Row]) -> str:
    lines = [
        "| seed | central pooled (train_model) | chosen | FedAvg | Δ | FedProx (μ = 0.1) | Δ |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.seed} | {r.central:.3f} | {r.central_model} | {r.federated['fedavg']:.3f} | "
            f"{r.gap('fedavg'):+.3f} | {r.federated['fedprox']:.3f} | {r.gap('fedprox'):+.3f} |"
        )
    for name, pick in (("mean", np.mean), ("largest gap", None)):
        if pick is None:
            avg = max(rows, key=lambda r: abs(r.gap("fedavg"))).gap("fedavg")
            prox = max(rows, key=lambda r: abs(r.gap("fedprox"))).gap("fedprox")
            lines.append(f"| {name} | | | | {avg:+.3f} | | {prox:+.3f} |")
        else:
            central = pick([r.central for r in rows])
            avg, prox = (pick([r.federated[s] for r in rows]) for s in STRATEGIES)
            lines.append(
                f"| {name} | {central:.3f} | | {avg:.3f} | {avg - central:+.3f} | {prox:.3f} | {prox - central:+.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    flower = "--flower" in argv
    seeds = [int(a) for a in argv if a != "--flower"] or list(SEEDS)
    task = load_tasks()["heart_disease"]
    data = heart_dataset(task, labelled_only=True)
    rows = []
    for seed in seeds:
        rows.append(compare(task, data, seed, flower))
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.1f} s" for k, v in rows[-1].seconds.items()), file=sys.stderr)
    print(markdown(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
