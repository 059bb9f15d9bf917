"""Intelligent questioning (pure, no I/O): which missing input, once known, could change the fused decision.

Value of information over the served models. For a record that lacks inputs:

- the fused risk **now** scores the missing inputs as NaN (each model's ONNX graph imputes them, as the stream does)
  and combines the models exactly as fuse does (``shared.fusion.combine``, the same formula);
- the **uncertainty** is the spread of the fused risk over the joint plausible completions of the askable missing
  inputs (every combination of their plausible values, weighted by the training distribution, as independent
  marginals; a Monte Carlo sample of ``MAX_JOINT_ROWS`` when the grid is larger): the 10th-90th percentile and the
  **flip share**, the weighted share of completions whose decision differs from the current one;
- each askable missing input is **ranked** by the weighted share of its own plausible values for which the
  decision differs (the other missing inputs held as NaN: that row is exactly the result fuse publishes after this
  one answer, while integrating over the others would credit this question with what later answers decide), then
  by the spread of the risk across its values;
- questioning is **done** when the joint flip share is at most ``TOLERANCE`` (no missing input, alone or together,
  plausibly changes the decision), or nothing is left to ask (every missing input was answered "unknown").

Plausible values come from the card's ``distributions`` (``shared.schemas.models.FeatureDistribution``): the ten
quantiles of a numeric input (equal weights, repeated values merged), the rate of a flag, the rates of a category's
values. An input without a distribution (under 10 training rows) falls back to wide, uniform values (five points
over the task's plausible range, 50/50 flags, equal categories): it is asked rather than assumed away.

Every model is called once per assessment, on every row (now, the joint completions, each input's values).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.report.inputs import InputGroup, category_name, display_unit, input_groups, present
from shared.fusion import Vote, combine
from shared.schemas.models import FeatureDistribution, ModelRef
from shared.schemas.predictions import FusionMethod
from shared.schemas.records import AIMASS_CODES, Code, Observation
from shared.tasks import FeatureSpec, TaskSpec

Scorer = Callable[[np.ndarray], np.ndarray]
"""float32 [N, F] with NaN for missing -> probability [N] (the registry's ONNX convention)."""

TOLERANCE = 0.05
"""Done when at most this share of the plausible completions would decide the other way."""
MAX_JOINT_ROWS = 512
LANGUAGES = ("en", "zh")
UNKNOWN = "unknown"
Answer = float | int | bool | str | None
"""A numeric value (in the feature's unit), a category's ``equals`` code, ``yes``/``no`` (or a bool) for a flag,
``male``/``female`` for sex; ``None`` or ``"unknown"``: the person does not know."""


@dataclass(frozen=True)
class ServedModel:
    """One served model as questioning sees it: fuse's weight for this patient, the card's threshold, a scorer."""

    model: ModelRef
    weight: float
    threshold: float
    score: Scorer


@dataclass(frozen=True)
class Option:
    value: str  # what to send back as the answer: an equals code, "yes", "no", "male", "female", "unknown"
    text: dict[str, str]


@dataclass(frozen=True)
class Question:
    input: str  # the input's id: its first feature's name
    label: str
    kind: str  # numeric | flag | category
    text: dict[str, str]
    options: tuple[Option, ...]  # numeric inputs: only "unknown" (the value is typed)
    unit: str  # display unit ("" when none)
    range: tuple[float, float] | None  # numeric: the task's plausible range


@dataclass(frozen=True)
class Ranked:
    question: Question
    flip_share: float  # share of the input's plausible values (weighted) that would change the decision
    risk_low: float  # the fused risk across its plausible values, lowest and highest
    risk_high: float

    @property
    def spread(self) -> float:
        return self.risk_high - self.risk_low


@dataclass(frozen=True)
class Assessment:
    probability: float
    label: int
    threshold: float
    risk_p10: float  # over the joint plausible completions of the askable missing inputs
    risk_p90: float
    flip_share: float
    ranked: tuple[Ranked, ...]  # askable missing inputs, most valuable first
    done: bool
    reason: str
    completions: int  # joint completions evaluated

    @property
    def next_question(self) -> Question | None:
        return None if self.done or not self.ranked else self.ranked[0].question


# ---- the catalogue ------------------------------------------------------------------------------------------------


def input_id(group: InputGroup) -> str:
    return group.specs[0].name


def _group(task: TaskSpec, input_name: str) -> InputGroup:
    for group in input_groups(task):
        if input_name in {s.name for s in group.specs}:
            return group
    raise KeyError(f"task {task.name} has no input {input_name!r}")


def _fallback_text(group: InputGroup) -> dict[str, str]:
    unit = display_unit(group.unit)
    lower = group.label[:1].lower() + group.label[1:]
    if group.kind == "numeric":
        en = f"What is the patient's {lower}" + (f" (in {unit})?" if unit else "?")
        zh = f"患者的{group.label}是多少" + (f"（单位：{unit}）？" if unit else "？")
    elif group.kind == "flag":
        en, zh = f"{group.label}: yes or no?", f"{group.label}：是还是否？"
    else:
        en, zh = f"What is the patient's {lower}?", f"患者的{group.label}是哪一种？"
    return {"en": en, "zh": zh}


def _option_text(spec: FeatureSpec) -> dict[str, str]:
    name = category_name(spec.equals or "")
    return {"en": name, "zh": name, **(spec.option or {})}


UNKNOWN_OPTION = Option(UNKNOWN, {"en": "unknown / don't know", "zh": "不知道"})
YES_NO = (Option("yes", {"en": "yes", "zh": "是"}), Option("no", {"en": "no", "zh": "否"}))
SEXES = (Option("male", {"en": "male", "zh": "男"}), Option("female", {"en": "female", "zh": "女"}))


def question(task: TaskSpec, input_name: str) -> Question:
    """The input's question in every language the task gives (a generic one from its label and unit otherwise)."""
    group = _group(task, input_name)
    text = {**_fallback_text(group), **next((s.question for s in group.specs if s.question), {})}
    spec = group.specs[0]
    if group.kind == "category":
        options: tuple[Option, ...] = tuple(Option(s.equals or "", _option_text(s)) for s in group.specs)
    elif group.kind == "flag":
        options = SEXES if spec.demographic == "sex" else YES_NO
    else:
        options = ()
    return Question(
        input=input_id(group),
        label=group.label,
        kind=group.kind,
        text=text,
        options=(*options, UNKNOWN_OPTION),
        unit=display_unit(group.unit),
        range=spec.plausible if group.kind == "numeric" else None,
    )


def questions(task: TaskSpec) -> list[Question]:
    """The whole catalogue, one question per input, in declared order."""
    return [question(task, input_id(g)) for g in input_groups(task)]


# ---- answers ------------------------------------------------------------------------------------------------------


def _is_unknown(answer: Answer) -> bool:
    return answer is None or (isinstance(answer, str) and answer.strip().lower() in {UNKNOWN, ""})


def _flag_on(spec: FeatureSpec, answer: Answer) -> bool:
    if isinstance(answer, bool):
        return answer
    text = str(answer).strip().lower()
    if spec.demographic == "sex":
        return text == (spec.equals or "male")
    if text in {"yes", "true", "1"} or text == (spec.equals or "").lower():
        return True
    if text in {"no", "false", "0"}:
        return False
    raise ValueError(f"{spec.name}: answer yes or no, not {answer!r}")


def answer_update(task: TaskSpec, input_name: str, answer: Answer) -> dict[int, float | None]:
    """Feature index -> the value clean will compute from this answer (``None`` for every index when unknown)."""
    group = _group(task, input_name)
    if _is_unknown(answer):
        return dict.fromkeys(group.indices)
    if group.kind == "numeric":
        value = float(answer)  # type: ignore[arg-type]
        spec = group.specs[0]
        if not math.isfinite(value) or (spec.plausible and not spec.plausible[0] <= value <= spec.plausible[1]):
            raise ValueError(f"{spec.name}: {value} is outside the plausible range {spec.plausible}")
        return {group.indices[0]: value}
    if group.kind == "flag":
        return {group.indices[0]: float(_flag_on(group.specs[0], answer))}
    chosen = str(answer)
    codes = [s.equals for s in group.specs]
    if chosen not in codes:
        raise ValueError(f"{group.label}: answer one of {codes}, not {answer!r}")
    return {i: float(s.equals == chosen) for i, s in zip(group.indices, group.specs, strict=True)}


def apply_answer(
    task: TaskSpec, features: Sequence[float | None], input_name: str, answer: Answer
) -> list[float | None]:
    """The feature vector after the answer (unchanged for "unknown"): what the pipeline will score."""
    out = list(features)
    if not _is_unknown(answer):
        for index, value in answer_update(task, input_name, answer).items():
            out[index] = value
    return out


def _negative_code(spec: FeatureSpec) -> str:
    equals = spec.equals or ""
    prefix, _, value = equals.rpartition(":")
    if value == "true":
        return f"{prefix}:false"
    return f"{equals}:not"


def answer_observation(
    task: TaskSpec, input_name: str, answer: Answer, time: datetime | None = None
) -> Observation | None:
    """The answer as a canonical observation, from which clean computes the same feature values as
    ``answer_update``. ``None`` for "unknown" and for demographics (age and sex travel in the record's own fields,
    not as observations)."""
    group = _group(task, input_name)
    spec = group.specs[0]
    if _is_unknown(answer) or spec.code is None:
        return None
    update = answer_update(task, input_name, answer)
    if group.kind == "numeric":
        return Observation(code=spec.code, value=update[group.indices[0]], unit=spec.unit, time=time)
    coded = str(answer)
    if group.kind == "flag":
        coded = (spec.equals or "") if update[group.indices[0]] else _negative_code(spec)
    value = Code(system=AIMASS_CODES, code=coded or "", display=category_name(coded or ""))
    return Observation(code=spec.code, value_code=value, time=time)


# ---- value of information -----------------------------------------------------------------------------------------


def missing_inputs(task: TaskSpec, features: Sequence[float | None]) -> list[InputGroup]:
    return [g for g in input_groups(task) if not all(present(features[i]) for i in g.indices)]


def _merged(values: Sequence[tuple[tuple[float, ...], float]]) -> list[tuple[tuple[float, ...], float]]:
    weights: dict[tuple[float, ...], float] = {}
    for value, weight in values:
        weights[value] = weights.get(value, 0.0) + weight
    total = sum(weights.values())
    return [(v, w / total) for v, w in weights.items() if w > 0] if total > 0 else []


def plausible_values(
    group: InputGroup, distributions: Mapping[str, FeatureDistribution]
) -> list[tuple[tuple[float, ...], float]]:
    """(the group's feature values, probability) for each plausible value of the input; weights sum to 1."""
    spec = group.specs[0]
    if group.kind == "numeric":
        d = distributions.get(spec.name)
        if d is not None and d.quantiles:
            return _merged([((float(q),), 1.0 / len(d.quantiles)) for q in d.quantiles])
        low, high = spec.plausible or (0.0, 1.0)
        return _merged([((float(v),), 0.2) for v in np.linspace(low, high, 5)])
    if group.kind == "flag":
        d = distributions.get(spec.name)
        rate = d.rate if d is not None and d.rate is not None else 0.5
        return _merged([((1.0,), rate), ((0.0,), 1.0 - rate)])
    rates = []
    for s in group.specs:
        d = distributions.get(s.name)
        rates.append(d.rate if d is not None and d.rate is not None else None)
    if any(r is None for r in rates) or sum(r or 0.0 for r in rates) <= 0:
        rates = [1.0] * len(group.specs)
    n = len(group.specs)
    return _merged([(tuple(float(j == k) for j in range(n)), float(r or 0.0)) for k, r in enumerate(rates)])


def _joint(
    groups: Sequence[InputGroup], distributions: Mapping[str, FeatureDistribution], seed: int
) -> list[tuple[dict[int, float], float]]:
    per_group = [plausible_values(g, distributions) for g in groups]
    size = math.prod(len(v) for v in per_group) if per_group else 0
    if size == 0:
        return []
    if size <= MAX_JOINT_ROWS:
        combos = itertools.product(*per_group)
        return [
            (
                {
                    i: v
                    for g, (values, _) in zip(groups, combo, strict=True)
                    for i, v in zip(g.indices, values, strict=True)
                },
                math.prod(w for _, w in combo),
            )
            for combo in combos
        ]
    rng = np.random.default_rng(seed)
    picks = [rng.choice(len(v), size=MAX_JOINT_ROWS, p=[w for _, w in v]) for v in per_group]
    return [
        (
            {
                i: val
                for g, v, p in zip(groups, per_group, picks, strict=True)
                for i, val in zip(g.indices, v[int(p[r])][0], strict=True)
            },
            1.0 / MAX_JOINT_ROWS,
        )
        for r in range(MAX_JOINT_ROWS)
    ]


def _row(base: np.ndarray, values: Mapping[int, float]) -> np.ndarray:
    row = base.copy()
    for i, v in values.items():
        row[i] = v
    return row


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    cumulative /= cumulative[-1]
    return float(values[order][min(int(np.searchsorted(cumulative, q)), len(values) - 1)])


def assess(
    task: TaskSpec,
    features: Sequence[float | None],
    models: Sequence[ServedModel],
    method: FusionMethod,
    distributions: Mapping[str, FeatureDistribution],
    unknown: Collection[str] = (),
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> Assessment:
    """The fused risk now, its uncertainty over the missing inputs, and the missing inputs ranked by value.

    ``unknown``: inputs (ids or any of their feature names) already asked and answered "unknown": never ranked,
    left out of the completions (nobody can learn them). One scorer call per model."""
    if not models:
        raise ValueError("nothing to assess: no served models")
    base = np.array([np.nan if v is None else v for v in features], dtype=np.float32)
    asked = set(unknown)
    askable = [g for g in missing_inputs(task, features) if not asked & ({input_id(g)} | {s.name for s in g.specs})]
    joint = _joint(askable, distributions, seed)
    singles = [(g, plausible_values(g, distributions)) for g in askable]
    rows = [base]
    rows += [_row(base, values) for values, _ in joint]
    for g, values in singles:
        rows += [_row(base, dict(zip(g.indices, v, strict=True))) for v, _ in values]
    x = np.stack(rows).astype(np.float32)
    scores = [np.asarray(m.score(x), dtype=np.float64).reshape(-1) for m in models]
    fused = [
        combine(method, [Vote(float(s[r]), m.weight, m.threshold) for m, s in zip(models, scores, strict=True)])
        for r in range(len(x))
    ]
    now = fused[0]
    probabilities = np.array([f.probability for f in fused])
    labels = np.array([f.label for f in fused])
    if joint:
        weights = np.array([w for _, w in joint])
        joint_p, joint_labels = probabilities[1 : 1 + len(joint)], labels[1 : 1 + len(joint)]
        flip = float(weights[joint_labels != now.label].sum() / weights.sum())
        p10, p90 = _weighted_quantile(joint_p, weights, 0.1), _weighted_quantile(joint_p, weights, 0.9)
    else:
        flip, p10, p90 = 0.0, now.probability, now.probability
    ranked = []
    offset = 1 + len(joint)
    for g, values in singles:
        block = slice(offset, offset + len(values))
        offset += len(values)
        w = np.array([weight for _, weight in values])
        changed = float(w[labels[block] != now.label].sum())
        ranked.append(
            Ranked(
                question(task, input_id(g)),
                changed,
                float(probabilities[block].min()),
                float(probabilities[block].max()),
            )
        )
    ranked.sort(key=lambda r: (-r.flip_share, -r.spread))
    missing = missing_inputs(task, features)
    if not missing:
        done, reason = True, "the record has every input"
    elif not askable:
        done, reason = True, "nothing left to ask: every missing input was answered unknown"
    elif flip <= tolerance:
        done = True
        reason = (
            f"no missing input could change the decision: {flip:.0%} of the plausible completions decide "
            f"otherwise (tolerance {tolerance:.0%})"
        )
    else:
        done, reason = False, f"{flip:.0%} of the plausible completions decide otherwise"
    return Assessment(
        probability=now.probability,
        label=now.label,
        threshold=now.threshold,
        risk_p10=p10,
        risk_p90=p90,
        flip_share=flip,
        ranked=tuple(ranked),
        done=done,
        reason=reason,
        completions=len(joint),
    )


def distribution_source(
    cards: Sequence[tuple[ModelRef, float, Mapping[str, FeatureDistribution]]],
) -> Mapping[str, FeatureDistribution]:
    """(model, weight, its card's distributions) -> the pooled model's distributions if it is served, else the
    heaviest-weighted model's."""
    if not cards:
        return {}
    ordered = sorted(cards, key=lambda c: (c[0].site != "pooled", -c[1]))
    return ordered[0][2]
