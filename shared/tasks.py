"""Tasks as configuration: ``tasks/<name>.yaml`` declares the label, the features, the model search and the fusion.

clean computes each task's feature vector with ``feature_vector``; train fits on those vectors; infer and fuse read
the same file. A new task is a new file, with no code change (see docs/tasks.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.schemas.predictions import FusionMethod
from shared.schemas.records import CanonicalRecord, Code
from shared.settings import PROJECT_ROOT

TASKS_DIR = PROJECT_ROOT / "tasks"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Spec):
    """One input of the model. Exactly one of ``demographic`` or ``code`` says where its value comes from.

    A numeric observation gives its value (in ``unit``, the canonical UCUM unit clean converts to). With ``equals``
    the feature is an indicator: 1.0 when the coded value (or the demographic) equals it, else 0.0.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    demographic: Literal["age_years", "sex"] | None = None
    code: Code | None = None
    unit: str | None = None
    equals: str | None = None
    plausible: tuple[float, float] | None = Field(None, description="outside this range: implausible, missing")
    question: dict[str, str] | None = Field(
        None,
        description=(
            "the plain-language question that asks for this input, per language code ({en: ..., zh: ...}); on a "
            "category input the first of its features that has one; without one, questioning builds one from the "
            "input's label and unit"
        ),
    )
    option: dict[str, str] | None = Field(
        None,
        description="an ``equals`` feature: how its value reads as an answer option, per language (default: the name)",
    )
    reference: tuple[float | None, float | None] | None = Field(
        None,
        description=(
            "the published normal range [low, high) a clinician reads the value against, in ``unit``; either end may "
            "be null (open); shown on the patient's timeline, never used by a model"
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> FeatureSpec:
        if (self.demographic is None) == (self.code is None):
            raise ValueError(f"feature {self.name}: give exactly one of 'demographic' or 'code'")
        return self

    @model_validator(mode="after")
    def _reference_is_a_range(self) -> FeatureSpec:
        if self.reference is None:
            return self
        low, high = self.reference
        empty = low is None and high is None
        inverted = low is not None and high is not None and low >= high
        if self.equals is not None or empty or inverted:
            raise ValueError(f"feature {self.name}: a reference is [low, high) of a numeric input, low < high")
        return self


class LabelSpec(_Spec):
    """The outcome: an observation's value above ``positive_above``, or a condition's presence."""

    code: Code
    kind: Literal["observation", "condition"] = "observation"
    positive_above: float = 0.0
    positive_label: str = "disease"
    negative_label: str = "no disease"


class ModelSearch(_Spec):
    family: Literal["mlp", "logistic"] = "mlp"
    width: list[int] = [16, 32, 64]
    depth: list[int] = [1, 2]
    dropout: list[float] = [0.0, 0.2]
    weight_decay: list[float] = [0.0, 1e-4, 1e-3]
    learning_rate: list[float] = [1e-3, 3e-3]
    trials: int = Field(12, ge=1)
    max_epochs: int = Field(300, ge=1)
    patience: int = Field(20, ge=1)
    time_budget_seconds: float = Field(120.0, gt=0)
    seed: int = 7


class FusionSpec(_Spec):
    method: FusionMethod = "weighted_average"
    deadline_seconds: float = Field(2.0, gt=0)
    review_spread: float = Field(
        0.3,
        ge=0,
        le=1,
        description=(
            "models disagree (needs_review) when one is at least half of this above its threshold and another at "
            "least half of it below; a model with under a third of an equal share of the weight does not count"
        ),
    )


class TaskSpec(_Spec):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    label: LabelSpec
    features: list[FeatureSpec] = Field(min_length=1)
    model: ModelSearch = ModelSearch()
    select_metric: Literal["auc", "f1", "brier"] = "auc"
    fusion: FusionSpec = FusionSpec()
    test_fraction: float = Field(0.25, gt=0, lt=1)
    free_text_codes: list[Code] = Field(
        default_factory=list,
        description=(
            "observation codes whose free-text values ingest lets through (Safe Harbor: any other free text is "
            "dropped at ingest); list only codes whose text is a controlled answer, never a narrative"
        ),
    )

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def load_task(path: Path) -> TaskSpec:
    return TaskSpec.model_validate(yaml.safe_load(path.read_text()))


@lru_cache(maxsize=4)
def load_tasks(directory: Path = TASKS_DIR) -> dict[str, TaskSpec]:
    tasks = [load_task(p) for p in sorted(directory.glob("*.yaml"))]
    return {t.name: t for t in tasks}


def free_text_codes(tasks: Iterable[TaskSpec]) -> frozenset[tuple[str, str]]:
    """(code system, code) of every observation whose free-text value some task allowlists: what ingest keeps."""
    return frozenset((c.system, c.code) for task in tasks for c in task.free_text_codes)


def _observation_value(record: CanonicalRecord, feature: FeatureSpec) -> float | None:
    assert feature.code is not None
    for observation in record.observations:
        if (observation.code.system, observation.code.code) != (feature.code.system, feature.code.code):
            continue
        if feature.equals is not None:
            coded = observation.value_code.code if observation.value_code else observation.value_text
            return None if coded is None else float(coded == feature.equals)
        if observation.value is None or (feature.unit is not None and observation.unit != feature.unit):
            return None
        return observation.value
    return None


def observed_value(record: CanonicalRecord, feature: FeatureSpec) -> float | None:
    """The feature's value as recorded (in the canonical unit), before the plausibility check."""
    if feature.demographic == "age_years":
        return None if record.demographics.age_years is None else float(record.demographics.age_years)
    if feature.demographic == "sex":
        sex = record.demographics.sex
        return None if sex == "unknown" else float(sex == (feature.equals or "male"))
    return _observation_value(record, feature)


def is_plausible(feature: FeatureSpec, value: float) -> bool:
    if feature.plausible is None:
        return True
    low, high = feature.plausible
    return low <= value <= high


def feature_value(record: CanonicalRecord, feature: FeatureSpec) -> float | None:
    value = observed_value(record, feature)
    return value if value is None or is_plausible(feature, value) else None


def canonical_units(tasks: Iterable[TaskSpec]) -> dict[tuple[str, str], str]:
    """(code system, code) -> the UCUM unit the task files declare for it; clean converts observations to it.

    Two tasks declaring different units for one code would need one observation in two units: a config error.
    """
    units: dict[tuple[str, str], str] = {}
    owner: dict[tuple[str, str], str] = {}
    for task in tasks:
        for feature in task.features:
            if feature.code is None or feature.unit is None:
                continue
            key = (feature.code.system, feature.code.code)
            if key in units and units[key] != feature.unit:
                raise ValueError(
                    f"tasks {owner[key]} and {task.name} declare different units for {key[1]} "
                    f"({units[key]!r}, {feature.unit!r}); one code needs one canonical unit"
                )
            units[key], owner[key] = feature.unit, task.name
    return units


def feature_vector(record: CanonicalRecord, task: TaskSpec) -> list[float | None]:
    """The task's features in declared order; ``None`` where missing or implausible (imputation is the model's)."""
    return [feature_value(record, f) for f in task.features]


def label_of(record: CanonicalRecord, task: TaskSpec) -> float | None:
    spec = task.label
    if spec.kind == "condition":
        return float(any((c.code.system, c.code.code) == (spec.code.system, spec.code.code) for c in record.conditions))
    for observation in record.observations:
        if (observation.code.system, observation.code.code) == (spec.code.system, spec.code.code):
            return None if observation.value is None else float(observation.value > spec.positive_above)
    return None
