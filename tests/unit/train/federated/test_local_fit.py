"""A site's round: train's network and loss, the FedProx pull towards the global model."""

import numpy as np
import pytest
import torch

from services.train.dataset import Dataset, split
from services.train.federated.local_fit import fit_locally, initial_weights, network_of, proximal_term
from services.train.federated.statistics import merge, positive_weight_of, preprocessing_from, site_statistics
from services.train.fit import TrialConfig

LOGISTIC = TrialConfig("logistic", 0, 0, 0.0, 0.01, 0.3)
MLP = TrialConfig("mlp", 8, 1, 0.0, 0.001, 0.1)


@pytest.fixture(scope="module")
def site_rows(heart_data: Dataset) -> tuple[np.ndarray, np.ndarray, float]:
    train = split(heart_data, 0.25, 7, validation_fraction=0.0).train
    stats = merge(site_statistics(train.at_site(s).x, train.at_site(s).y) for s in train.site_names)
    va = train.at_site("va-long-beach")
    return preprocessing_from(stats).apply(va.x), va.y, positive_weight_of(stats)


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(((a[k].astype(np.float64) - b[k]) ** 2).sum() for k in a)))


def test_the_proximal_term_is_the_squared_distance_to_the_global_weights() -> None:
    network = network_of(MLP, 3)
    anchor = {name: p.detach().clone() for name, p in network.named_parameters()}
    assert float(proximal_term(network, anchor).detach()) == 0.0
    with torch.no_grad():
        network[0].weight.add_(0.5)  # 8 x 3 entries, each 0.5 away
    assert float(proximal_term(network, anchor).detach()) == pytest.approx(8 * 3 * 0.25)


@pytest.mark.parametrize("config", [LOGISTIC, MLP], ids=["logistic", "mlp"])
def test_fedprox_keeps_a_site_nearer_the_global_model_the_larger_mu(site_rows, config: TrialConfig) -> None:
    x, y, positive = site_rows
    start = initial_weights(config, x.shape[1], seed=3)
    moved = [
        distance(fit_locally(config, start, x, y, epochs=5, positive_weight=positive, proximal_mu=mu, seed=1)[0], start)
        for mu in (0.0, 0.5, 3.0)
    ]
    assert moved[0] > moved[1] > moved[2] > 0, moved


def test_a_local_fit_is_deterministic_and_lowers_the_sites_loss(site_rows) -> None:
    x, y, positive = site_rows
    start = initial_weights(LOGISTIC, x.shape[1], seed=3)
    once, first = fit_locally(LOGISTIC, start, x, y, epochs=1, positive_weight=positive, proximal_mu=0.0, seed=1)
    again, _ = fit_locally(LOGISTIC, start, x, y, epochs=1, positive_weight=positive, proximal_mu=0.0, seed=1)
    assert distance(once, again) == 0.0
    _, later = fit_locally(LOGISTIC, once, x, y, epochs=5, positive_weight=positive, proximal_mu=0.0, seed=2)
    assert later < first < np.log(2) * (1 + positive) / 2 + 1e-9  # below the untrained network's weighted loss


def test_a_proximal_pull_sgd_cannot_follow_is_refused(site_rows) -> None:
    x, y, positive = site_rows
    start = initial_weights(LOGISTIC, x.shape[1], seed=3)
    with pytest.raises(ValueError, match="diverge"):
        fit_locally(LOGISTIC, start, x, y, epochs=1, positive_weight=positive, proximal_mu=2 / 0.3, seed=1)
