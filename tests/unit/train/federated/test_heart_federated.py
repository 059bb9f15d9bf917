"""research/federated/heart_federated.py: the federated model's graph and the table (the central search is not
rerun here: docs/federated.md has the measured table)."""

import numpy as np

from research.federated.heart_federated import Row, federated_onnx, markdown
from services.train.dataset import Dataset, split
from services.train.evaluate import roc_auc
from services.train.onnx_export import onnx_probabilities


def test_a_few_federated_rounds_give_a_graph_that_ranks_the_held_out_rows(heart_data: Dataset) -> None:
    onnx = federated_onnx(heart_data, seed=7, mu=0.1, test_fraction=0.25, rounds=4)
    test = split(heart_data, 0.25, 7, validation_fraction=0.0).test
    assert roc_auc(test.y, onnx_probabilities(onnx, test.x)) > 0.85


def test_the_table_shows_each_seed_the_mean_and_the_largest_gap() -> None:
    rows = [
        Row(1, 0.90, "logistic, wd 0.01", {"fedavg": 0.89, "fedprox": 0.91}, {}),
        Row(2, 0.80, "logistic, wd 0.01", {"fedavg": 0.78, "fedprox": 0.80}, {}),
    ]
    table = markdown(rows).splitlines()
    assert len(table) == 2 + 2 + 2 and all(line.count("|") == 8 for line in table)
    assert "| mean | 0.850 | | 0.835 | -0.015 | 0.855 | +0.005 |" in table
    assert table[-1].split("|")[5].strip() == "-0.020" and np.isclose(rows[0].gap("fedprox"), 0.01)
