"""From a batch of ``records.clean`` values to model inputs, and from model outputs to predictions (pure).

A record scores once per active model of each task it has features for. Rows of one task are stacked into one
float32 matrix (NaN = missing, the registry's ONNX convention) so each model runs once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.models import ModelCard, ModelRef
from shared.schemas.predictions import Prediction
from shared.schemas.records import QualityFlag, TaskFeatures


class ScoringInput(BaseModel):
    """The part of a ``CleanRecord`` infer reads. Validating only these fields keeps parsing cheap; clean owns the
    rest of the record, and the fields infer carries on are validated with the shared schema types."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    record_id: str = Field(min_length=1)
    patient: str = Field(min_length=1)
    hospital: str = Field(min_length=1)
    quality_flags: list[QualityFlag] = Field(default_factory=list)
    features: dict[str, TaskFeatures] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scored:
    """One record of the batch that has features, and where it came from."""

    position: int
    event_id: str
    record: ScoringInput


@dataclass(slots=True)
class TaskRows:
    """Every row of one task in the batch, in arrival order."""

    task: str
    records: list[Scored] = field(default_factory=list)
    names: list[tuple[str, ...]] = field(default_factory=list)
    values: list[list[float | None]] = field(default_factory=list)


def rows_by_task(records: Sequence[tuple[int, str, ScoringInput]]) -> dict[str, TaskRows]:
    """``(position in batch, record event id, record)`` grouped per task; records without features add nothing."""
    tasks: dict[str, TaskRows] = {}
    for position, event_id, record in records:
        if not record.features:
            continue
        scored = Scored(position, event_id, record)
        for task, features in record.features.items():
            rows = tasks.get(task) or tasks.setdefault(task, TaskRows(task))
            rows.records.append(scored)
            rows.names.append(tuple(features.names))
            rows.values.append(features.values)
    return tasks


def column_order(record_names: tuple[str, ...], model_features: Sequence[str]) -> list[int] | None:
    """Where each of the model's features sits in the record's vector (-1 = the record lacks it); ``None`` when
    the record already has the model's order (the usual case: clean and train read the same task file)."""
    if not model_features or tuple(model_features) == record_names:
        return None
    index = {name: i for i, name in enumerate(record_names)}
    return [index.get(name, -1) for name in model_features]


def model_matrix(rows: TaskRows, card: ModelCard) -> np.ndarray:
    """The task's rows as the model reads them: float32 ``[N, F]``, NaN where missing (``None`` becomes NaN)."""
    orders: dict[tuple[str, ...], list[int] | None] = {}
    if all(names == rows.names[0] for names in rows.names):
        order = column_order(rows.names[0], card.features)
        matrix = np.array(rows.values, dtype=np.float32)
        return matrix if order is None else _reorder(matrix, order)
    out = np.full((len(rows.values), len(card.features) or len(rows.values[0])), np.nan, dtype=np.float32)
    for i, (names, values) in enumerate(zip(rows.names, rows.values, strict=True)):
        order = orders[names] if names in orders else orders.setdefault(names, column_order(names, card.features))
        vector = np.array(values, dtype=np.float32)
        out[i] = vector if order is None else _reorder(vector[None, :], order)[0]
    return out


def _reorder(matrix: np.ndarray, order: list[int]) -> np.ndarray:
    padded = np.concatenate([matrix, np.full((matrix.shape[0], 1), np.nan, dtype=np.float32)], axis=1)
    return padded[:, order]  # -1 picks the NaN column: a feature the record lacks is missing


def prediction(
    scored: Scored, task: str, card: ModelCard, model: ModelRef, probability: float, cache_hit: bool, latency_ms: float
) -> Prediction:
    """The prediction of the model of ``card`` (``model`` is its ref, made once per batch) for one record."""
    probability = min(1.0, max(0.0, probability))
    record = scored.record
    return Prediction(
        record_id=record.record_id,
        patient=record.patient,
        hospital=record.hospital,
        task=task,
        model=model,
        probability=probability,
        label=int(probability >= card.threshold),
        cache_hit=cache_hit,
        latency_ms=round(latency_ms, 3),
        features=record.features[task].values,
        quality_flags=record.quality_flags,
    )
