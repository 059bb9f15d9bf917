"""One consumed batch as work per model (pure): which rows each model scores, which the cache already answered,
and the predictions that result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic

import numpy as np

from services.infer.cache_keys import cache_keys, decode_probability, encode_probability, row_digests
from services.infer.catalog import LoadedModel, ScorerT
from services.infer.scoring import TaskRows, model_matrix, prediction
from shared.topics import derived_event_id


@dataclass(slots=True)
class ModelGroup(Generic[ScorerT]):
    """The rows of one task, for one of the task's models: one onnxruntime call per batch for the misses."""

    rows: TaskRows
    model: LoadedModel[ScorerT]
    features: np.ndarray
    keys: list[str]
    probabilities: np.ndarray = field(init=False)
    cached: np.ndarray = field(init=False)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.probabilities = np.full(len(self.keys), np.nan)
        self.cached = np.zeros(len(self.keys), dtype=bool)

    @property
    def misses(self) -> np.ndarray:
        return np.flatnonzero(~self.cached)


def plan_groups(
    tasks: Mapping[str, TaskRows],
    models: Mapping[str, Sequence[LoadedModel[ScorerT]]],
) -> list[ModelGroup[ScorerT]]:
    groups = []
    for task, rows in tasks.items():
        digests: dict[tuple[str, ...], list[str]] = {}
        for loaded in models.get(task, ()):
            features = model_matrix(rows, loaded.card)
            order_key = tuple(loaded.card.features)
            row_keys = (
                digests[order_key] if order_key in digests else digests.setdefault(order_key, row_digests(features))
            )
            groups.append(ModelGroup(rows, loaded, features, cache_keys(loaded.card, row_keys)))
    return groups


def apply_cached(
    groups: Sequence[ModelGroup[ScorerT]],
    answers: Sequence[Sequence[bytes | None]] | None,
) -> tuple[int, int]:
    """Fill each group from the cache's answers (one list per group, in key order); returns (hits, misses)."""
    if answers is None:
        return 0, 0
    hits = misses = 0
    for group, values in zip(groups, answers, strict=True):
        for i, value in enumerate(values):
            probability = decode_probability(value)
            if probability is None:
                misses += 1
                continue
            group.probabilities[i] = probability
            group.cached[i] = True
            hits += 1
    return hits, misses


def new_cache_entries(groups: Sequence[ModelGroup[ScorerT]]) -> list[list[tuple[str, bytes]]]:
    """What the batch scored, per group, for the cache."""
    return [[(group.keys[i], encode_probability(group.probabilities[i])) for i in group.misses] for group in groups]


@dataclass(frozen=True, slots=True)
class Built:
    position: int
    key: bytes
    value: bytes
    event_id: str
    task: str
    site: str


def build_predictions(groups: Sequence[ModelGroup[ScorerT]]) -> list[Built]:
    """Every prediction, in the batch's record order (one patient's predictions stay in order on its partition)."""
    built = []
    for group in groups:
        card = group.model.card
        model = card.ref
        latency_ms = group.seconds * 1000.0
        for i, scored in enumerate(group.rows.records):
            hit = bool(group.cached[i])
            probability = float(group.probabilities[i])
            made = prediction(scored, group.rows.task, card, model, probability, hit, 0.0 if hit else latency_ms)
            event_id = derived_event_id("infer", scored.event_id, card.task, card.site, card.version)
            key = scored.record.patient.encode()
            built.append(Built(scored.position, key, made.model_dump_json().encode(), event_id, card.task, card.site))
    built.sort(key=lambda b: b.position)
    return built
