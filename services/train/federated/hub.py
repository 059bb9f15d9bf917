"""The hub's side of a federated training: statistics, then rounds over k of n sites (pure: numpy).

Each exchange goes to every site the transport reaches and waits (``Waiting``) until all answered, or at least
``min_sites`` answered and ``grace_seconds`` passed since the k-th, or ``round_timeout`` passed; fewer than
``min_sites`` answers end the training (``TooFewSites``). A site that fails or never answers is left out of that
round and asked again in the next. Averaging weighs each site's weights by its training rows: FedAvg, and FedProx
on the hub (its proximal term acts at the sites).

What the hub receives is recorded (``Received``): names and shapes of arrays and names of metrics, never rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from services.train.federated.statistics import SiteStatistics, merge, positive_weight_of, preprocessing_from
from services.train.preprocess import Preprocessing

Kind = Literal["statistics", "train", "evaluate"]
Scalar = float | int | str
PREPROCESSING_FIELDS = ("fill", "lower", "upper", "columns", "indicators", "mean", "scale")
PREFIX_PRE, PREFIX_WEIGHT = "pre.", "w."


@dataclass(frozen=True)
class Request:
    kind: Kind
    round: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    node: str  # the transport's name for the site (a Flower node id): the hub needs no more
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float]


class Transport(Protocol):
    def exchange(self, request: Request, waiting: Waiting) -> list[Reply]:
        """``request`` to every reachable site; the answers ``waiting`` let in (errors left out)."""
        ...


@dataclass(frozen=True)
class Waiting:
    """When an exchange stops waiting for answers."""

    min_replies: int
    round_timeout: float
    grace_seconds: float = 2.0

    def done(self, elapsed: float, expected: int, replies: int, kth_at: float | None) -> bool:
        """``kth_at``: elapsed seconds when the ``min_replies``-th answer came (None before)."""
        if replies >= expected or elapsed >= self.round_timeout:
            return True
        return kth_at is not None and elapsed - kth_at >= self.grace_seconds


class TooFewSites(Exception):
    """Fewer sites answered than the training needs."""


@dataclass(frozen=True)
class Plan:
    rounds: int
    min_sites: int
    round_timeout: float = 600.0
    grace_seconds: float = 2.0
    local_epochs: int = 1
    proximal_mu: float = 0.0  # 0: FedAvg
    final_evaluation: bool = True

    @property
    def waiting(self) -> Waiting:
        return Waiting(self.min_sites, self.round_timeout, self.grace_seconds)

    @property
    def strategy(self) -> str:
        return "fedprox" if self.proximal_mu > 0 else "fedavg"


@dataclass(frozen=True)
class Received:
    kind: Kind
    round: int
    node: str
    shapes: dict[str, tuple[int, ...]]
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class RoundResult:
    round: int
    sites: int  # that answered
    examples: dict[str, float]  # node → its training rows (its weight in the average)
    train_loss: float  # weighted by rows
    held_out: dict[str, dict[str, float]]  # node → the received global model on its held-out rows


@dataclass(frozen=True)
class Federated:
    preprocessing: Preprocessing
    positive_weight: float
    weights: dict[str, np.ndarray]
    rounds: list[RoundResult]
    final: dict[str, dict[str, float]]  # node → the final model on its held-out rows
    received: list[Received]
    statistics: SiteStatistics


def preprocessing_arrays(p: Preprocessing) -> dict[str, np.ndarray]:
    return {PREFIX_PRE + name: np.asarray(getattr(p, name)) for name in PREPROCESSING_FIELDS}


def preprocessing_of(arrays: Mapping[str, np.ndarray]) -> Preprocessing:
    values = {name: np.asarray(arrays[PREFIX_PRE + name]) for name in PREPROCESSING_FIELDS}
    for name in ("columns", "indicators"):
        values[name] = values[name].astype(np.int64)
    return Preprocessing(**values)


def weight_arrays(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {PREFIX_WEIGHT + name: w for name, w in weights.items()}


def weights_in(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name[len(PREFIX_WEIGHT) :]: w for name, w in arrays.items() if name.startswith(PREFIX_WEIGHT)}


def weighted_average(parts: Sequence[tuple[Mapping[str, np.ndarray], float]]) -> dict[str, np.ndarray]:
    """Σ n_i w_i / Σ n_i per array (in float64, back to each array's dtype)."""
    total = sum(n for _, n in parts)
    if not parts or total <= 0:
        raise ValueError("nothing to average")
    first = parts[0][0]
    for weights, _ in parts:
        if weights.keys() != first.keys() or any(weights[k].shape != first[k].shape for k in first):
            raise ValueError("sites sent weights of different networks")
    return {
        name: (sum(np.asarray(w[name], np.float64) * n for w, n in parts) / total).astype(first[name].dtype)
        for name in first
    }


def _record(request: Request, replies: list[Reply], log: list[Received]) -> None:
    for r in replies:
        shapes = {name: tuple(a.shape) for name, a in r.arrays.items()}
        log.append(Received(request.kind, request.round, r.node, shapes, tuple(sorted(r.metrics))))


def _ask(transport: Transport, request: Request, plan: Plan, log: list[Received]) -> list[Reply]:
    replies = transport.exchange(request, plan.waiting)
    _record(request, replies, log)
    if len(replies) < plan.min_sites:
        raise TooFewSites(
            f"{request.kind} round {request.round}: {len(replies)} sites answered, {plan.min_sites} are needed"
        )
    return replies


def _held_out(replies: list[Reply], prefix: str) -> dict[str, dict[str, float]]:
    return {
        r.node: {k[len(prefix) :]: v for k, v in r.metrics.items() if k.startswith(prefix)}
        for r in replies
        if any(k.startswith(prefix) for k in r.metrics)
    }


def federate(
    transport: Transport,
    plan: Plan,
    initial_weights: Callable[[int], dict[str, np.ndarray]],
    config: Mapping[str, Scalar] | None = None,
) -> Federated:
    """``initial_weights(n_inputs)``: round 0's global model; ``config``: what every site's fit needs (the model
    configuration, learning rate, seed), sent with every request."""
    log: list[Received] = []
    shared = dict(config or {})
    replies = _ask(transport, Request("statistics", 0, config=shared), plan, log)
    stats = merge(SiteStatistics.from_arrays(r.arrays) for r in replies)
    preprocessing = preprocessing_from(stats)
    positive_weight = positive_weight_of(stats)
    shared.update(
        {"positive-weight": positive_weight, "local-epochs": plan.local_epochs, "proximal-mu": plan.proximal_mu}
    )
    weights = initial_weights(preprocessing.width)
    rounds = []
    for number in range(1, plan.rounds + 1):
        request = Request("train", number, {**preprocessing_arrays(preprocessing), **weight_arrays(weights)}, shared)
        replies = _ask(transport, request, plan, log)
        examples = [r.metrics["num-examples"] for r in replies]
        weights = weighted_average([(weights_in(r.arrays), n) for r, n in zip(replies, examples, strict=True)])
        train_loss = sum(r.metrics["train-loss"] * n for r, n in zip(replies, examples, strict=True)) / sum(examples)
        by_node = {r.node: n for r, n in zip(replies, examples, strict=True)}
        rounds.append(RoundResult(number, len(replies), by_node, train_loss, _held_out(replies, "held-out-")))
    final: dict[str, dict[str, float]] = {}
    if plan.final_evaluation:
        request = Request(
            "evaluate", plan.rounds, {**preprocessing_arrays(preprocessing), **weight_arrays(weights)}, shared
        )
        final = _held_out(_ask(transport, request, plan, log), "held-out-")
    return Federated(preprocessing, positive_weight, weights, rounds, final, log, stats)
