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


MIN_OBSERVED_FRACTION = 0.5


def feature_codes(task: TaskSpec) -> set[tuple[str, str]]:
    return {(f.code.system, f.code.code) for f in task.features if f.code is not None}


def applies(record: CanonicalRecord, task: TaskSpec) -> bool:
    """A task applies to a record that carries its label, or at least half of the observations its features read.

    Demographics do not count (every record has an age), nor does one shared vital sign: a blood pressure alone
    is not a heart-disease work-up, and a model asked about it would answer from imputed values only.
    """
    present = {(o.code.system, o.code.code) for o in record.observations}
    label = task.label.code.system, task.label.code.code
    if task.label.kind == "observation" and label in present:
        return True
    wanted = feature_codes(task)
    return bool(wanted) and len(wanted & present) >= MIN_OBSERVED_FRACTION * len(wanted)


def task_features(record: CanonicalRecord, task: TaskSpec) -> TaskResult:
    values: list[float | None] = []
    flags: list[QualityFlag] = []
    implausible: list[str] = []
    for feature in task.features:
        value = observed_value(record, feature)
        if value is not None and not (math.isfinite(value) and is_plausible(feature, value)):
            low, high = feature.plausible or (math.nan, math.nan)
            flags.append(
                QualityFlag(
                    kind="implausible",
                    field=feature.name,
                    detail=(
                        f"{task.name}: outside the task's plausible range {low:g}-{high:g} {feature.unit or ''}; "
                        "treated as missing"
                    ).replace("  ", " "),
                )
            )
            implausible.append(feature.name)
            value = None
        if value is None:
            flags.append(QualityFlag(kind="missing", field=feature.name, detail=task.name))
        values.append(value)
    features = TaskFeatures(names=task.feature_names, values=values, label=label_of(record, task))
    return TaskResult(features, tuple(flags), tuple(implausible))
