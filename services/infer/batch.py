"""One consumed batch as work per model (pure): which rows each model scores, which the cache already answered,
and the predictions that result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic

import numpy as np

from services.infer.cache_keys import cache_keys, decode_probability, encode_probability, row_digests
from services.infer.catalog import LoadedModel, ScorerT
from services.infer.scoring import TaskRows, model_matrix, prediction_id, prediction_json


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


def plan_groups(tasks: Mapping[str, TaskRows], models: Mapping[str, Sequence[LoadedModel[ScorerT]]],
                ) -> list[ModelGroup[ScorerT]]:
    groups = []
    for task, rows in tasks.items():
        digests: dict[tuple[str, ...], list[str]] = {}
        for loaded in models.get(task, ()):
            features = model_matrix(rows, loaded.card)
            order_key = tuple(loaded.card.features)
            row_keys = digests[order_key] if order_key in digests else digests.setdefault(
                order_key, row_digests(features))
            groups.append(ModelGroup(rows, loaded, features, cache_keys(loaded.card, row_keys)))
    return groups


def all_keys(groups: Sequence[ModelGroup[ScorerT]]) -> list[str]:
    return [key for group in groups for key in group.keys]


def apply_cached(groups: Sequence[ModelGroup[ScorerT]], values: Sequence[bytes | None] | None) -> tuple[int, int]:
    """Fill each group from the cache's answers (``all_keys`` order); returns (hits, misses)."""
    if values is None:
        return 0, 0
    offset = hits = 0
    for group in groups:
        for i in range(len(group.keys)):
            probability = decode_probability(values[offset + i])
            if probability is not None:
                group.probabilities[i] = probability
                group.cached[i] = True
                hits += 1
        offset += len(group.keys)
    return hits, len(values) - hits


def new_cache_entries(groups: Sequence[ModelGroup[ScorerT]]) -> list[tuple[str, bytes]]:
    return [(group.keys[i], encode_probability(group.probabilities[i])) for group in groups for i in group.misses]


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
        latency_ms = group.seconds * 1000.0
        for i, scored in enumerate(group.rows.records):
            hit = bool(group.cached[i])
            body = prediction_json(scored, group.rows.task, card, float(group.probabilities[i]), hit,
                                   0.0 if hit else latency_ms)
            built.append(Built(scored.position, scored.record.patient.encode(), body,
                               prediction_id(scored.event_id, card), card.task, card.site))
    built.sort(key=lambda b: b.position)
    return built
