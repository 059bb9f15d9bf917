"""A task's features as the inputs a person recognises (pure).

One-hot features that share an observation code (the four chest-pain indicators) form one input, "Chest pain
type: asymptomatic"; every other feature is an input of its own. Attribution occludes whole inputs, so a category
is never half-removed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.tasks import FeatureSpec, TaskSpec

InputKind = Literal["numeric", "flag", "category"]
UNIT_DISPLAY = {"mm[Hg]": "mmHg", "1": "", "a": "years"}
ACRONYMS = {"bp": "BP", "st": "ST", "ecg": "ECG", "lv": "LV", "t": "T"}


@dataclass(frozen=True)
class InputGroup:
    label: str
    kind: InputKind
    indices: tuple[int, ...]
    specs: tuple[FeatureSpec, ...]

    @property
    def unit(self) -> str | None:
        return "a" if self.specs[0].demographic == "age_years" else self.specs[0].unit


def display_unit(ucum: str | None) -> str:
    """``mm[Hg]`` -> ``mmHg``; a count (``1``) shows no unit."""
    return UNIT_DISPLAY.get(ucum or "", ucum or "")


def humanize(name: str) -> str:
    words = [ACRONYMS.get(w, w) for w in name.replace("-", "_").split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _kind(specs: Sequence[FeatureSpec]) -> InputKind:
    if len(specs) > 1:
        return "category"
    return "flag" if specs[0].equals is not None else "numeric"


def _single_label(feature: FeatureSpec) -> str:
    return "Sex" if feature.demographic == "sex" else humanize(feature.name)


def input_groups(task: TaskSpec) -> list[InputGroup]:
    """The task's inputs in declared order; features sharing a coded observation form one category input."""
    keyed: dict[tuple[str, ...], list[int]] = {}
    for index, feature in enumerate(task.features):
        if feature.code is not None and feature.equals is not None:
            key: tuple[str, ...] = ("code", feature.code.system, feature.code.code)
        else:
            key = ("feature", feature.name)
        keyed.setdefault(key, []).append(index)
    groups = []
    for key, indices in keyed.items():
        specs = tuple(task.features[i] for i in indices)
        label = humanize(key[2]) if len(indices) > 1 else _single_label(specs[0])
        groups.append(InputGroup(label, _kind(specs), tuple(indices), specs))
    return groups


def present(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def category_name(equals: str) -> str:
    """``chest-pain-type:asymptomatic`` -> ``asymptomatic``."""
    return equals.split(":", 1)[-1]


def value_text(group: InputGroup, features: Sequence[float | None]) -> str | None:
    """What the patient's record says for this input; ``None`` when it was not measured."""
    values = [features[i] for i in group.indices]
    if not all(present(v) for v in values):
        return None
    spec = group.specs[0]
    if group.kind == "numeric":
        return f"{_number(values[0])} {display_unit(group.unit)}".strip()  # type: ignore[arg-type]
    if group.kind == "flag":
        on = bool(values[0])
        if spec.demographic == "sex":
            return spec.equals if on else f"not {spec.equals}"
        return "yes" if on else "no"
    chosen = [category_name(s.equals or "") for s, v in zip(group.specs, values, strict=True) if v]
    return ", ".join(chosen) or "none of the listed"
