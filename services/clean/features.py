"""Per-task feature vectors with their quality flags (pure). Missing stays missing: imputation is the model's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.schemas.records import CanonicalRecord, QualityFlag, TaskFeatures
from shared.tasks import TaskSpec, is_plausible, label_of, observed_value


@dataclass(frozen=True)
class TaskResult:
    features: TaskFeatures
    flags: tuple[QualityFlag, ...]
    implausible: tuple[str, ...]  # feature names whose value was outside the task's plausible range


def task_codes(task: TaskSpec) -> set[tuple[str, str]]:
    codes = {(f.code.system, f.code.code) for f in task.features if f.code is not None}
    if task.label.kind == "observation":
        codes.add((task.label.code.system, task.label.code.code))
    return codes


def applies(record: CanonicalRecord, task: TaskSpec) -> bool:
    """A task applies to a record carrying at least one of its observations (demographics alone do not count:
    every record has an age, and a heart-disease record is no breast-cancer case)."""
    wanted = task_codes(task)
    return any((o.code.system, o.code.code) in wanted for o in record.observations)


def task_features(record: CanonicalRecord, task: TaskSpec) -> TaskResult:
    values: list[float | None] = []
    flags: list[QualityFlag] = []
    implausible: list[str] = []
    for feature in task.features:
        value = observed_value(record, feature)
        if value is not None and not (math.isfinite(value) and is_plausible(feature, value)):
            low, high = feature.plausible or (math.nan, math.nan)
            flags.append(QualityFlag(kind="implausible", field=feature.name, detail=(
                f"{task.name}: outside the task's plausible range {low:g}-{high:g} {feature.unit or ''}; "
                "treated as missing").replace("  ", " ")))
            implausible.append(feature.name)
            value = None
        if value is None:
            flags.append(QualityFlag(kind="missing", field=feature.name, detail=task.name))
        values.append(value)
    features = TaskFeatures(names=task.feature_names, values=values, label=label_of(record, task))
    return TaskResult(features, tuple(flags), tuple(implausible))
