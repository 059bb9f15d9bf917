"""Occlusion attribution (pure): how much each input moved one model's probability for this patient.

Each input the record has is replaced by NaN, which the model's graph imputes from its training data (the median
of the training split, plus the missing-indicator where training saw it missing) -- the model's own reference for
"not measured". The change in that model's probability is the input's influence: positive pushed the risk up.
Inputs the record lacks were already scored as the reference, so their influence is zero and they are listed apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from services.report.inputs import InputGroup, present, value_text
from shared.schemas.models import ModelRef
from shared.schemas.predictions import Contribution

POOLED = "pooled"
Scorer = Callable[[np.ndarray], np.ndarray]
"""float32 [N, F] with NaN for missing -> probability [N] (the registry's ONNX convention)."""


@dataclass(frozen=True)
class Influence:
    label: str
    value: str
    delta: float


@dataclass(frozen=True)
class Occlusion:
    probability: float
    influences: list[Influence]  # largest absolute change first
    not_measured: list[str]


def as_matrix(features: Sequence[float | None]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in features]], dtype=np.float32)


def _occluded_rows(x: np.ndarray, measured: Sequence[InputGroup]) -> np.ndarray:
    """The record as it is, then once per measured input with that input occluded."""
    rows = [x]
    for group in measured:
        row = x.copy()
        row[list(group.indices)] = np.nan
        rows.append(row)
    return np.stack(rows)


def _read(
    probabilities: np.ndarray,
    features: Sequence[float | None],
    groups: Sequence[InputGroup],
    measured: Sequence[InputGroup],
) -> Occlusion:
    base = float(probabilities[0])
    influences = [
        Influence(g.label, value_text(g, features) or "partly recorded", base - float(p))
        for g, p in zip(measured, probabilities[1:], strict=True)
    ]
    influences.sort(key=lambda i: abs(i.delta), reverse=True)
    not_measured = [g.label for g in groups if g not in measured]
    return Occlusion(base, influences, not_measured)


def occlusions(score: Scorer, cases: Sequence[tuple[Sequence[float | None], Sequence[InputGroup]]]) -> list[Occlusion]:
    """Each case's (features, inputs) occluded, every row of every case in one model call."""
    measured = [[g for g in groups if any(present(features[i]) for i in g.indices)] for features, groups in cases]
    blocks = [_occluded_rows(as_matrix(features)[0], m) for (features, _), m in zip(cases, measured, strict=True)]
    if not blocks:
        return []
    probabilities = np.asarray(score(np.concatenate(blocks)), dtype=np.float64).reshape(-1)
    ends = np.cumsum([len(b) for b in blocks])
    return [
        _read(probabilities[end - len(block) : end], features, groups, m)
        for (features, groups), m, block, end in zip(cases, measured, blocks, ends, strict=True)
    ]


def occlusion(score: Scorer, features: Sequence[float | None], groups: Sequence[InputGroup]) -> Occlusion:
    """One batched model call: the record as it is, then once per measured input with that input occluded."""
    [result] = occlusions(score, [(features, groups)])
    return result


def explanation_candidates(contributions: Sequence[Contribution]) -> list[ModelRef]:
    """Which model's reasoning the report shows: the pooled model if it took part, else the heaviest-weighted one
    (the next ones are fall-backs when a model file cannot be loaded)."""
    ordered = sorted(contributions, key=lambda c: (c.model.site != POOLED, -c.weight))
    return [c.model for c in ordered]
