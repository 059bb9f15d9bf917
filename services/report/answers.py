"""A clinician's answer on the questioning page as the document written back to ``ingest.raw`` (pure).

The document is the hospital's canonical JSON record (``application/json``): the inputs the patient's latest result
was made from, as they were recorded (canonical units, coded values), plus the answered one, for the patient the
platform already knows — named by a patient reference sealed for the hospital (``shared.pseudonyms``), never by an
MRN, which report does not have. Ingest reads it like any other document; clean, infer, fuse and report then make
the new result the page waits for: the whole pipeline, the same code as every other record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from services.report.inputs import InputGroup, category_name, input_groups
from services.report.questioning import answer_observation, apply_answer
from services.report.view import InputLine, ReportView
from shared.schemas.records import Code, IncomingRecord, Observation
from shared.tasks import TaskSpec

Answer = float | bool | str
"""A numeric input's value (in the task's unit), a flag's yes/no, or a category's ``equals`` value."""
OTHER = "other"  # a category answered "none of the listed"


def group_key(group: InputGroup) -> str:
    """An input's name in URLs and forms: its observation code (``thallium-scan``) or its feature name."""
    spec = group.specs[0]
    return spec.code.code if spec.code is not None and group.kind == "category" else spec.name


def group_of(task: TaskSpec, key: str) -> InputGroup | None:
    """The input ``key`` names: its ``group_key`` or any of its feature names (questioning's ``input_id``)."""
    return next((g for g in input_groups(task) if key == group_key(g) or key in {s.name for s in g.specs}), None)


def recorded_answers(task: TaskSpec, inputs: Sequence[InputLine]) -> dict[str, Answer]:
    """What the result's inputs say, as answers: the starting point the new record repeats."""
    lines = {line.label: line for line in inputs}
    answers: dict[str, Answer] = {}
    for group in input_groups(task):
        line = lines.get(group.label)
        if line is None or line.text is None:
            continue
        if group.kind == "numeric" and line.value is not None:
            answers[group_key(group)] = line.value
        elif group.kind == "flag" and line.value is not None:
            answers[group_key(group)] = bool(line.value)
        elif group.kind == "category" and line.category is not None:
            answers[group_key(group)] = line.category
    return answers


def parse_answer(group: InputGroup, text: str) -> Answer:
    """A form's value for ``group``; ``ValueError`` with a reason a person can act on."""
    if group.kind == "numeric":
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{group.label}: a number is needed") from None
        spec = group.specs[0]
        if spec.plausible is not None and not spec.plausible[0] <= value <= spec.plausible[1]:
            low, high = spec.plausible
            raise ValueError(f"{group.label}: {value:g} is outside {low:g}-{high:g} {group.unit or ''}".rstrip())
        return value
    if group.kind == "flag" and group.specs[0].demographic == "sex":
        if text not in ("male", "female"):
            raise ValueError(f"{group.label}: answer male or female")
        return text == (group.specs[0].equals or "male")
    if group.kind == "flag":
        if text not in ("yes", "no"):
            raise ValueError(f"{group.label}: answer yes or no")
        return text == "yes"
    choices = [s.equals for s in group.specs if s.equals] + [OTHER]
    if text not in choices:
        raise ValueError(f"{group.label}: choose one of {', '.join(category_name(c) for c in choices)}")
    return text


def _observation(task: TaskSpec, group: InputGroup, answer: Answer) -> Observation | None:
    """``questioning.answer_observation``, and "none of the listed" for a category (a code no feature equals)."""
    spec = group.specs[0]
    if group.kind == "category" and answer == OTHER and spec.code is not None:
        other = Code(system=spec.code.system, code=f"{spec.code.code}:{OTHER}")
        return Observation(code=Code(system=spec.code.system, code=spec.code.code), value_code=other)
    return answer_observation(task, spec.name, answer)


def answered_record(
    task: TaskSpec, view: ReportView, answers: Mapping[str, Answer], patient_reference: str, when: datetime
) -> IncomingRecord:
    """The latest result's inputs with ``answers`` over them, as one record of the patient at ``when``."""
    merged = {**recorded_answers(task, view.inputs), **answers}
    age: int | None = None
    sex = "unknown"
    observations: list[Observation] = []
    for group in input_groups(task):
        key = group_key(group)
        if key not in merged:
            continue
        demographic = group.specs[0].demographic
        if demographic == "age_years":
            age = round(float(merged[key]))
        elif demographic == "sex":
            named = group.specs[0].equals or "male"
            sex = named if merged[key] else ("female" if named == "male" else "male")
        else:
            observation = _observation(task, group, merged[key])
            if observation is not None:
                observations.append(observation)
    return IncomingRecord.model_validate(
        {
            "patient_id": patient_reference,
            "recorded_at": when,
            "age_years": age,
            "sex": sex,
            "observations": [o.model_dump(mode="json", exclude_none=True) for o in observations],
        }
    )


def features_of(task: TaskSpec, answers: Mapping[str, Answer]) -> list[float | None]:
    """The feature vector clean would make of ``answers`` (what the page scores before the pipeline answers)."""
    values: list[float | None] = [None] * len(task.features)
    for key, answer in answers.items():
        group = group_of(task, key)
        if group is None:
            continue
        if group.kind == "category" and answer == OTHER:
            values = [0.0 if i in group.indices else v for i, v in enumerate(values)]
        else:
            values = apply_answer(task, values, group.specs[0].name, answer)
    return values
