"""A real Flower federation: a SuperLink, a SuperNode per site, ``flwr run`` (about 1-2 min on 2 busy cores).

Cleveland and Hungary answer; Switzerland's SuperNode is pointed at a FIFO nobody writes, so its ClientApp blocks
reading its rows and never answers: every exchange goes on with 2 of 3 sites after the grace period.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from services.train.dataset import Dataset, split
from services.train.evaluate import roc_auc
from services.train.federated.flower_app import load_site, save_site
from services.train.federated.hub import Plan, federate
from services.train.federated.in_process import InProcessTransport
from services.train.federated.local_federation import LocalFederation
from services.train.federated.local_fit import initial_weights, model_config, trial_config
from services.train.federated.statistics import MAX_LEVELS
from services.train.onnx_export import onnx_probabilities

pytestmark = pytest.mark.timeout(420)

ANSWERING = ("cleveland", "hungary")
RUN = {
    "rounds": 1,  # each exchange is a fresh ClientApp process per site (~10-20 s here): one round shows it all
    "min-sites": 2,
    "grace-seconds": 1.0,
    "round-timeout": 180.0,
    "local-epochs": 4,
    "final-evaluation": False,
}
DEFAULTS = {"family": "logistic", "width": 0, "depth": 0, "dropout": 0.0, "weight-decay": 0.01}
DEFAULTS |= {"learning-rate": 0.3, "seed": 7, "test-fraction": 0.25, "proximal-mu": 0.0}


@pytest.fixture(scope="module")
def outcome(heart_data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("federation")
    files = {}
    for site in ANSWERING:
        files[site] = root / f"{site}.npz"
        save_site(heart_data.at_site(site), files[site])
    files["switzerland"] = root / "switzerland.npz"
    os.mkfifo(files["switzerland"])
    with LocalFederation(root / "processes", files) as federation:
        output = federation.run({**RUN, "output-dir": str(root / "out")}, timeout=400)
    return output, json.loads((output / "summary.json").read_text())


def test_every_round_completes_with_the_two_sites_that_answer(outcome) -> None:
    _, summary = outcome
    assert [r["sites"] for r in summary["rounds"]] == [2]
    nodes = {r["node"] for r in summary["received"]}
    assert len(nodes) == 2 and all(set(r["examples"]) == nodes for r in summary["rounds"])


def test_each_node_trained_on_its_own_sites_training_rows_only(outcome, heart_data: Dataset) -> None:
    _, summary = outcome
    train = split(heart_data, 0.25, 7, validation_fraction=0.0).train
    expected = sorted(float(len(train.at_site(s))) for s in ANSWERING)
    for r in summary["rounds"]:
        assert sorted(r["examples"].values()) == expected


def test_only_weights_statistics_and_metrics_reached_the_hub(outcome, heart_data: Dataset) -> None:
    output, summary = outcome
    weights = np.load(output / "weights.npz")
    network = {f"w.{name}": list(weights[name].shape) for name in weights.files}
    width = len(heart_data.feature_names)
    for received in summary["received"]:
        if received["kind"] == "train":
            assert received["shapes"] == network
            assert set(received["metrics"]) == {"num-examples", "train-loss"} | {
                f"held-out-{m}" for m in ("examples", "loss", "auc")
            }
        else:
            shapes = received["shapes"]
            assert {tuple(v) for k, v in shapes.items() if not k.startswith("level_") and k != "rows"} == {(width,)}
            assert shapes["level_values"] == shapes["level_counts"] and shapes["level_values"][0] <= width * MAX_LEVELS


def test_the_released_graph_carries_the_preprocessing_and_ranks_held_out_patients(outcome, heart_data) -> None:
    output, _ = outcome
    test = split(Dataset.concat(*(heart_data.at_site(s) for s in ANSWERING)), 0.25, 7, validation_fraction=0.0).test
    auc = roc_auc(test.y, onnx_probabilities((output / "model.onnx").read_bytes(), test.x))  # raw rows, NaN kept
    assert auc is not None and auc > 0.8


def test_flower_carries_exactly_what_the_in_process_hub_computes(outcome, tmp_path) -> None:
    """Same sites, same config: the weights after a real round are the in-process ones (the adapters add and
    lose nothing)."""
    output, summary = outcome
    sites = {s: load_site(s, Path(summary["config"]["output-dir"]).parent / f"{s}.npz") for s in ANSWERING}
    config = {**DEFAULTS, **summary["config"]}
    trial = trial_config(config)
    fed = federate(
        InProcessTransport(sites),
        Plan(rounds=RUN["rounds"], min_sites=2, local_epochs=RUN["local-epochs"], final_evaluation=False),
        lambda n: initial_weights(trial, n, 7),
        {**model_config(trial, 7, 0.25), "optimizer": "sgd"},
    )
    real = np.load(output / "weights.npz")
    for name, value in fed.weights.items():
        np.testing.assert_allclose(real[name], value, rtol=1e-6, atol=1e-7)
