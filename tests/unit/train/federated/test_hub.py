"""The hub's rounds over k of n sites, in one process (the Flower run is in test_flower_app.py)."""

import numpy as np
import pytest

from services.train.dataset import Dataset, split
from services.train.evaluate import roc_auc
from services.train.federated.hub import Plan, Reply, Request, TooFewSites, Waiting, federate, weighted_average
from services.train.federated.in_process import InProcessTransport
from services.train.federated.local_fit import initial_weights, model_config, scorer_of
from services.train.federated.site import Site
from services.train.federated.statistics import MAX_LEVELS
from services.train.fit import TrialConfig

LOGISTIC = TrialConfig("logistic", 0, 0, 0.0, 0.01, 0.3)
SEED, TEST_FRACTION = 7, 0.25


class Failing(Site):
    def answer(self, request: Request):
        if request.kind == "train":
            raise RuntimeError("disk full")
        return super().answer(request)


def sites_of(data: Dataset, failing: str | None = None) -> dict[str, Site]:
    return {s: (Failing if s == failing else Site)(s, data.at_site(s)) for s in data.site_names}


def run(transport, rounds: int = 3, min_sites: int = 4):
    return federate(
        transport,
        Plan(rounds=rounds, min_sites=min_sites, local_epochs=2),
        lambda n: initial_weights(LOGISTIC, n, SEED),
        model_config(LOGISTIC, SEED, TEST_FRACTION),
    )


def test_a_site_splits_its_rows_as_the_pooled_split_does(heart_data: Dataset) -> None:
    pooled = split(heart_data, TEST_FRACTION, SEED, validation_fraction=0.0)
    for name, site in sites_of(heart_data).items():
        held = site.splits({"test-fraction": TEST_FRACTION, "seed": SEED}).test
        assert sorted(held.record_ids) == sorted(pooled.test.at_site(name).record_ids)


def test_a_site_refuses_to_hold_another_sites_rows(heart_data: Dataset) -> None:
    with pytest.raises(ValueError, match="holds rows of"):
        Site("cleveland", heart_data)


def test_federated_training_learns_and_nothing_row_shaped_reaches_the_hub(heart_data: Dataset) -> None:
    fed = run(InProcessTransport(sites_of(heart_data)), rounds=8)
    test = split(heart_data, TEST_FRACTION, SEED, validation_fraction=0.0).test
    auc = roc_auc(test.y, scorer_of(LOGISTIC, fed.preprocessing, fed.weights).predict(test.x))
    assert auc > 0.85  # central pooled: 0.890 on this split (docs/federated.md)
    assert fed.rounds[-1].train_loss < fed.rounds[0].train_loss
    assert set(fed.final) == set(heart_data.site_names)
    assert_only_weights_and_statistics_arrived(fed, len(heart_data.feature_names))


def assert_only_weights_and_statistics_arrived(fed, n_features: int) -> None:
    """Train answers: the network's arrays; evaluations: none; statistics: per feature, and the value counts."""
    network = {f"w.{name}": w.shape for name, w in fed.weights.items()}
    for received in fed.received:
        if received.kind == "train":
            assert received.shapes == network, received
        elif received.kind == "evaluate":
            assert received.shapes == {}, received
        else:
            levels = {
                name: shape for name, shape in received.shapes.items() if name in ("level_values", "level_counts")
            }
            features = {name: shape for name, shape in received.shapes.items() if name not in levels and name != "rows"}
            assert set(features.values()) == {(n_features,)} and received.shapes["rows"] == (2,), received
            assert len(set(levels.values())) == 1 and levels["level_values"][0] <= n_features * MAX_LEVELS


def test_a_site_that_fails_is_left_out_and_the_rounds_go_on_with_k_of_n(heart_data: Dataset) -> None:
    transport = InProcessTransport(sites_of(heart_data, failing="hungary"))
    fed = run(transport, rounds=2, min_sites=3)
    assert [r.sites for r in fed.rounds] == [3, 3]
    assert [(node, kind) for node, kind, _, _ in transport.failures] == [("hungary", "train")] * 2
    assert len(fed.final) == 4  # evaluation still reaches it


def test_fewer_than_k_sites_end_the_training(heart_data: Dataset) -> None:
    with pytest.raises(TooFewSites, match="3 sites answered, 4 are needed"):
        run(InProcessTransport(sites_of(heart_data, failing="hungary")), rounds=1, min_sites=4)


def test_waiting_stops_at_all_answers_at_the_timeout_or_after_the_grace_once_k_answered() -> None:
    waiting = Waiting(min_replies=2, round_timeout=30.0, grace_seconds=2.0)
    assert waiting.done(elapsed=1.0, expected=3, replies=3, kth_at=0.5)
    assert not waiting.done(elapsed=10.0, expected=3, replies=1, kth_at=None)
    assert not waiting.done(elapsed=5.0, expected=3, replies=2, kth_at=4.0)
    assert waiting.done(elapsed=6.0, expected=3, replies=2, kth_at=4.0)
    assert waiting.done(elapsed=30.0, expected=3, replies=1, kth_at=None)


def test_averaging_weighs_sites_by_rows_as_flowers_fedavg_does() -> None:
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    rng = np.random.default_rng(0)
    parts = [({"w": rng.normal(size=(1, 5)).astype(np.float32), "b": rng.normal(size=1)}, n) for n in (10, 30, 60)]
    ours = weighted_average(parts)
    theirs = aggregate_arrayrecords(
        [
            RecordDict(
                {"arrays": ArrayRecord({k: Array(v) for k, v in w.items()}), "m": MetricRecord({"num-examples": n})}
            )
            for w, n in parts
        ],
        "num-examples",
    )
    for name, value in ours.items():
        np.testing.assert_allclose(value, theirs[name].numpy(), rtol=1e-6)
    assert not np.allclose(ours["w"], np.mean([w["w"] for w, _ in parts], axis=0))  # not the plain mean


def test_sites_of_different_networks_cannot_be_averaged() -> None:
    with pytest.raises(ValueError, match="different networks"):
        weighted_average([({"w": np.zeros(3)}, 1), ({"w": np.zeros(4)}, 1)])


def test_a_reply_carries_weights_and_metrics_only(heart_data: Dataset) -> None:
    site = Site("switzerland", heart_data.at_site("switzerland"))
    config = model_config(LOGISTIC, SEED, TEST_FRACTION)
    arrays, metrics = site.answer(Request("statistics", 0, config=config))
    assert isinstance(Reply("n", arrays, metrics).metrics["num-examples"], float)
