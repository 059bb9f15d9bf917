"""A patient's health timeline and the search across patients (pure: built from stored report views and index
entries, no I/O).

Per task: every result in time order (risk, verdict, review flags with their reasons, quality flags), the key inputs
over time (numeric ones as series against the task file's published reference range, categories and flags as the
results where they changed), and for each pair of consecutive results what changed: the risk, the inputs whose
recorded value differs, and the attribution difference (the new result's occlusion influences minus the old one's).

Risk bands are read off the fused probability (``RISK_BANDS``), the same for every task: below 15% is ``low`` (the
pre-test probability under which the 2019 ESC chronic coronary syndromes guideline advises no further testing),
from 50% ``high`` (the default decision threshold: a positive verdict), ``medium`` between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.report.inputs import input_groups
from services.report.ports import ReportEntry
from services.report.view import InputLine, ReportView
from shared.schemas.records import QualityFlag
from shared.tasks import TaskSpec

Band = Literal["low", "medium", "high"]
RISK_BANDS: tuple[tuple[Band, float], ...] = (("low", 0.15), ("medium", 0.5), ("high", float("inf")))
"""Each band up to (not including) its bound."""
THRESHOLD = 0.5
"""Where the trend plot draws its line: the default decision threshold (the fused verdict weighs the models' own
thresholds, which the stored view does not keep, so the verdict is shown per result besides)."""
Reference = tuple[float | None, float | None]
"""A published normal range ``[low, high)``; ``None``: open at that end."""
OutOfRange = Literal["low", "high"]


def risk_band(probability: float) -> Band:
    return next(band for band, bound in RISK_BANDS if probability < bound)


def out_of_range(value: float | None, reference: Reference | None) -> OutOfRange | None:
    """``low`` below the range, ``high`` at or above its upper end (guidelines state "normal: < 120"), else ``None``."""
    if value is None or reference is None:
        return None
    low, high = reference
    if low is not None and value < low:
        return "low"
    if high is not None and value >= high:
        return "high"
    return None


def references_of(tasks: Mapping[str, TaskSpec]) -> dict[str, dict[str, Reference]]:
    """task -> input label (as the report labels it) -> the task file's reference range, for numeric inputs that
    declare one."""
    return {
        name: {g.label: g.specs[0].reference for g in input_groups(task) if g.specs[0].reference is not None}
        for name, task in tasks.items()
    }


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ResultPoint(_Model):
    """One result on the trend: what the report said, and the link to it."""

    report_id: str
    created_at: datetime
    hospital: str
    probability: float
    label: int
    verdict: str
    band: Band
    needs_review: bool
    review_reasons: list[str]
    quality_flags: list[QualityFlag]
    not_measured: list[str]


class InputPoint(_Model):
    report_id: str
    created_at: datetime
    text: str | None  # None: not measured in that result
    value: float | None = None  # numeric inputs
    out_of_range: OutOfRange | None = None


class InputSeries(_Model):
    """One input over time: every result's value for a numeric input, the results where it changed otherwise."""

    label: str
    kind: Literal["numeric", "flag", "category"]
    unit: str | None
    reference: Reference | None
    points: list[InputPoint]


class InputChange(_Model):
    label: str
    before: str | None
    after: str | None


class DriverChange(_Model):
    """An input's occlusion influence in the old and the new result (probability points as fractions: 0.05 is 5
    points); an input outside a result's shown drivers counts as 0 there."""

    label: str
    before: float
    after: float
    difference: float


class Change(_Model):
    """What changed from one result of a task to the next, and why (the attribution difference, largest first)."""

    before: str  # report ids
    after: str
    probability_before: float
    probability_after: float
    risk_change: float
    verdict_changed: bool
    inputs: list[InputChange]
    attribution: list[DriverChange]


class TaskTimeline(_Model):
    task: str
    title: str
    positive_label: str
    results: list[ResultPoint]  # oldest first
    inputs: list[InputSeries]
    changes: list[Change]  # oldest first, one per consecutive pair of results

    @property
    def latest(self) -> ResultPoint:
        return self.results[-1]


class Timeline(_Model):
    patient: str
    hospitals: list[str]
    tasks: list[TaskTimeline]


def _point(view: ReportView) -> ResultPoint:
    return ResultPoint(
        report_id=view.report_id,
        created_at=view.created_at,
        hospital=view.hospital,
        probability=view.probability,
        label=view.label,
        verdict=view.verdict,
        band=risk_band(view.probability),
        needs_review=view.needs_review,
        review_reasons=view.review_reasons,
        quality_flags=view.quality_flags,
        not_measured=view.not_measured,
    )


def _input_point(view: ReportView, line: InputLine, reference: Reference | None) -> InputPoint:
    value = line.value if line.kind == "numeric" and line.text is not None else None
    return InputPoint(
        report_id=view.report_id,
        created_at=view.created_at,
        text=line.text,
        value=value,
        out_of_range=out_of_range(value, reference),
    )


def _series(views: Sequence[ReportView], references: Mapping[str, Reference]) -> list[InputSeries]:
    """Inputs in the order the newest result lists them; an input a task file no longer has keeps its history."""
    order: dict[str, InputLine] = {}
    for view in reversed(views):
        for line in view.inputs:
            order.setdefault(line.label, line)
    series = []
    for label, model_line in order.items():
        reference = references.get(label) if model_line.kind == "numeric" else None
        points = [_input_point(view, line, reference) for view in views for line in view.inputs if line.label == label]
        if model_line.kind != "numeric":  # a category or flag is shown where it changed: its first value, then news
            points = [p for i, p in enumerate(points) if i == 0 or p.text != points[i - 1].text]
        series.append(
            InputSeries(label=label, kind=model_line.kind, unit=model_line.unit, reference=reference, points=points)
        )
    return series


def attribution_difference(before: ReportView, after: ReportView) -> list[DriverChange]:
    """``after``'s driver deltas minus ``before``'s, per input, largest absolute difference first."""
    old = {d.label: d.delta for d in before.drivers}
    new = {d.label: d.delta for d in after.drivers}
    labels = list(dict.fromkeys([*new, *old]))
    changes = [
        DriverChange(
            label=label,
            before=old.get(label, 0.0),
            after=new.get(label, 0.0),
            difference=new.get(label, 0.0) - old.get(label, 0.0),
        )
        for label in labels
    ]
    return sorted(changes, key=lambda c: -abs(c.difference))


def changed_inputs(before: ReportView, after: ReportView) -> list[InputChange]:
    """The inputs whose recorded value (its text: value and unit, category, yes/no, or not measured) differs."""
    old = {line.label: line.text for line in before.inputs}
    return [
        InputChange(label=line.label, before=old.get(line.label), after=line.text)
        for line in after.inputs
        if old.get(line.label) != line.text
    ]


def change(before: ReportView, after: ReportView) -> Change:
    return Change(
        before=before.report_id,
        after=after.report_id,
        probability_before=before.probability,
        probability_after=after.probability,
        risk_change=after.probability - before.probability,
        verdict_changed=before.label != after.label,
        inputs=changed_inputs(before, after),
        attribution=attribution_difference(before, after),
    )


def task_timeline(views: Sequence[ReportView], references: Mapping[str, Reference]) -> TaskTimeline:
    """One task's timeline from its results (any order)."""
    ordered = sorted(views, key=lambda v: (v.created_at, v.report_id))
    newest = ordered[-1]
    return TaskTimeline(
        task=newest.task,
        title=newest.task_title,
        positive_label=newest.positive_label,
        results=[_point(v) for v in ordered],
        inputs=_series(ordered, references),
        changes=[change(a, b) for a, b in pairwise(ordered)],
    )


def build_timeline(
    patient: str, views: Iterable[ReportView], references: Mapping[str, Mapping[str, Reference]]
) -> Timeline:
    """The patient's timeline: one section per task, the task with the newest result first."""
    by_task: dict[str, list[ReportView]] = {}
    for view in views:
        by_task.setdefault(view.task, []).append(view)
    tasks = [task_timeline(task_views, references.get(task, {})) for task, task_views in by_task.items()]
    tasks.sort(key=lambda t: t.latest.created_at, reverse=True)
    hospitals = sorted({view.hospital for task_views in by_task.values() for view in task_views})
    return Timeline(patient=patient, hospitals=hospitals, tasks=tasks)


# -- search across patients ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """What ``GET /patients`` filters a result on; ``None``: any. Dates are the result's UTC day, both inclusive."""

    hospital: str | None = None
    task: str | None = None
    needs_review: bool | None = None
    start: date | None = None
    end: date | None = None
    band: Band | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Search:
        """The search a query string asks for; ``ValueError`` saying what to change."""
        review = query.get("needs_review")
        if review not in (None, "", "true", "false"):
            raise ValueError("needs_review is true or false")
        band = query.get("band") or None
        if band is not None and band not in [b for b, _ in RISK_BANDS]:
            raise ValueError("band is low, medium or high")
        search = cls(
            hospital=query.get("hospital") or None,
            task=query.get("task") or None,
            needs_review=None if not review else review == "true",
            start=_day(query, "from"),
            end=_day(query, "to"),
            band=band,  # type: ignore[arg-type]
        )
        if search.start and search.end and search.start > search.end:
            raise ValueError("from is after to")
        return search

    def matches(self, entry: ReportEntry) -> bool:
        day = entry.created_at.date()
        return (
            (self.hospital is None or entry.hospital == self.hospital)
            and (self.task is None or entry.task == self.task)
            and (self.needs_review is None or entry.needs_review == self.needs_review)
            and (self.start is None or day >= self.start)
            and (self.end is None or day <= self.end)
            and (self.band is None or risk_band(entry.probability) == self.band)
        )

    def as_details(self) -> dict[str, str]:
        """The filters given, for the audit event (no identifier is a filter)."""
        given = {
            "hospital": self.hospital,
            "task": self.task,
            "needs_review": None if self.needs_review is None else str(self.needs_review).lower(),
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "band": self.band,
        }
        return {name: value for name, value in given.items() if value is not None}


def _day(query: Mapping[str, str], name: str) -> date | None:
    text = query.get(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} is a date, YYYY-MM-DD") from None


class PatientHit(_Model):
    """A patient with the results that matched, newest first."""

    patient: str
    hospital: str
    latest: datetime
    results: list[ReportEntry]

    @property
    def bands(self) -> list[Band]:
        return [risk_band(r.probability) for r in self.results]


def search_patients(patients: Mapping[str, Sequence[ReportEntry]], search: Search) -> list[PatientHit]:
    """Patients with at least one matching result, the most recent match first."""
    hits = []
    for patient, entries in patients.items():
        matched = sorted((e for e in entries if search.matches(e)), key=lambda e: e.created_at, reverse=True)
        if matched:
            hits.append(
                PatientHit(patient=patient, hospital=matched[0].hospital, latest=matched[0].created_at, results=matched)
            )
    return sorted(hits, key=lambda h: (h.latest, h.patient), reverse=True)
