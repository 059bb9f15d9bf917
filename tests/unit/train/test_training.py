"""Training on the real data sets: the quality bars of the issue, parity, determinism, the cross-site view."""

import numpy as np
import pytest
import torch

from services.train.dataset import POOLED
from services.train.evaluate import roc_auc
from services.train.failures import NotTrainable
from services.train.network import Scorer, build_network
from services.train.onnx_export import onnx_probabilities
from services.train.preprocess import fit_preprocessing
from services.train.training import train_model
from tests.unit.train.conftest import quick


def test_heart_disease_pooled_reaches_the_literature_on_held_out_data(tasks, heart_data) -> None:
    model = train_model(tasks["heart_disease"], heart_data, POOLED)
    assert model.metrics["auc"] >= 0.88
    assert model.data["test"] == 230 and model.metrics["n"] == 230
    assert set(model.cross_site) == {"cleveland", "hungary", "va-long-beach", "switzerland"}
    assert model.metrics["onnx_parity_max_abs_diff"] <= 1e-5


def test_breast_cancer_reaches_auc_098(tasks, wdbc_data) -> None:
    model = train_model(tasks["breast_cancer"], wdbc_data)
    assert model.metrics["auc"] >= 0.98
    assert model.plots["roc.png"].startswith(b"\x89PNG") and model.plots["calibration.png"].startswith(b"\x89PNG")


def test_same_seed_same_metrics_and_the_seed_matters(tasks, heart_data) -> None:
    task = quick(tasks["heart_disease"])
    first, second = train_model(task, heart_data, "hungary"), train_model(task, heart_data, "hungary")
    assert first.metrics == second.metrics and first.cross_site == second.cross_site
    assert np.array_equal(first.test_p, second.test_p)
    assert first.fingerprint == second.fingerprint
    other = train_model(quick(tasks["heart_disease"], seed=8), heart_data, "hungary")
    assert not np.array_equal(other.test_p, first.test_p)


def test_the_onnx_graph_imputes_and_scales_like_torch_on_rows_with_missing_values(tasks, heart_data) -> None:
    model = train_model(quick(tasks["heart_disease"]), heart_data, "cleveland")
    x = heart_data.x[:200].copy()
    x[::3, 7] = np.nan  # cholesterol missing, as at Switzerland
    x[1, :] = np.nan  # nothing recorded at all
    x[2, 6] = 1000.0  # far outside the training range (resting blood pressure)
    assert np.isnan(heart_data.x).any()
    torch_p, onnx_p = model.scorer.predict(x), onnx_probabilities(model.onnx, x)
    assert np.max(np.abs(torch_p - onnx_p)) <= 1e-5
    assert ((onnx_p > 0) & (onnx_p < 1)).all()


def test_a_site_model_is_scored_on_every_site_held_out_data(tasks, heart_data) -> None:
    model = train_model(quick(tasks["heart_disease"]), heart_data, "cleveland")
    assert model.cross_site["cleveland"] == pytest.approx(model.metrics["auc"])
    assert {"hungary", "va-long-beach"} <= set(model.cross_site)
    assert model.data["train"] + model.data["validation"] + model.data["test"] == len(heart_data.at_site("cleveland"))


def test_an_unknown_site_or_a_one_class_site_is_refused_with_a_reason(tasks, heart_data) -> None:
    with pytest.raises(NotTrainable, match="no labelled records from site 'nowhere'"):
        train_model(quick(tasks["heart_disease"]), heart_data, "nowhere")
    negatives_only = heart_data.take(np.flatnonzero(heart_data.y == 0))
    with pytest.raises(NotTrainable, match="one class only"):
        train_model(quick(tasks["heart_disease"]), negatives_only, POOLED)


@pytest.mark.parametrize("site", ["va-long-beach", "switzerland"])
def test_a_small_sites_model_ranks_another_hospitals_patients_sensibly_whatever_the_seed(
    tasks, heart_data, site
) -> None:
    """The small sites' models once scored Cleveland anywhere from AUC 0.27 to 0.86 depending on the seed (search
    and early stopping on 18-30 validation rows, indicators scaled to ten standard deviations elsewhere)."""
    cleveland = heart_data.at_site("cleveland")
    aucs = [
        roc_auc(
            cleveland.y,
            train_model(quick(tasks["heart_disease"], seed=seed), heart_data, site).scorer.predict(cleveland.x),
        )
        for seed in (1, 2, 3, 4)
    ]
    assert min(aucs) >= 0.65, aucs
    assert max(aucs) - min(aucs) <= 0.15, aucs


def test_the_graph_computes_the_inputs_the_network_was_trained_on(heart_data) -> None:
    """numpy (training) and torch/ONNX (serving) run the same preprocessing, on sites with other missing tests."""
    cleveland = heart_data.at_site("cleveland")
    preprocessing = fit_preprocessing(cleveland.x)
    network = build_network(preprocessing.width, "logistic", 0, 0, 0.0)
    weights = np.random.default_rng(5).normal(0, 0.3, preprocessing.width)
    with torch.no_grad():
        network[-1].weight.copy_(torch.tensor(weights, dtype=torch.float32)[None, :])
    expected = 1 / (1 + np.exp(-(preprocessing.apply(heart_data.x) @ weights)))
    assert np.max(np.abs(Scorer(preprocessing, network).predict(heart_data.x) - expected)) <= 1e-5
