"""The report's view model (pure): everything a renderer needs, built from a fused result, its task and the model
cards. It is stored as JSON beside the rendered files, so a report can be re-rendered without the broker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.report.attribution import Occlusion
from services.report.inputs import InputGroup, humanize, input_groups, present, value_text
from shared.errors import RejectedInput
from shared.schemas.models import ModelCard, ModelRef
from shared.schemas.predictions import FusedPrediction
from shared.schemas.records import QualityFlag
from shared.tasks import TaskSpec

DISCLAIMER = (
    "This report is produced by machine-learning models to support a clinician's judgement. It is not a diagnosis "
    "and does not replace the assessment of a qualified clinician, who remains responsible for every decision."
)
ATTRIBUTION_METHOD = (
    "Occlusion on {model}: each recorded input is replaced by the model's own reference for a missing value "
    "(its training median) and the change in that model's probability is measured. Positive values pushed the "
    "risk up."
)
DRIVERS_SHOWN = 8


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


class ModelLine(_View):
    site: str
    version: str
    weight: float
    probability: float
    auc: float | None = None


class Driver(_View):
    label: str
    value: str
    delta: float


class InputLine(_View):
    """One input as recorded, with what FHIR needs to cite it as an Observation."""

    label: str
    kind: Literal["numeric", "flag", "category"]
    text: str | None  # None: not measured
    system: str | None = None
    code: str | None = None
    unit: str | None = None
    value: float | None = None
    category: str | None = None  # the coded value of a category input
    demographic: str | None = None


class ReportView(_View):
    report_id: str
    record_id: str
    patient: str
    hospital: str
    created_at: datetime
    task: str
    task_title: str
    positive_label: str
    negative_label: str
    probability: float
    label: int
    method: str
    agreement: float
    needs_review: bool
    review_reasons: list[str]
    models: list[ModelLine]
    drivers: list[Driver]
    drivers_not_shown: int = 0  # smaller influences left out of the table
    attribution: str | None
    attribution_model: ModelRef | None
    not_measured: list[str]
    inputs: list[InputLine]
    quality_flags: list[QualityFlag]
    disclaimer: str = DISCLAIMER

    @property
    def verdict(self) -> str:
        return self.positive_label if self.label else self.negative_label

    @property
    def summary(self) -> str:
        review = f"; needs review: {'; '.join(self.review_reasons) or 'flagged'}" if self.needs_review else ""
        return (
            f"{self.task}: {self.probability:.0%} risk of {self.positive_label} ({self.verdict}); "
            f"{len(self.models)} model(s), agreement {self.agreement:.2f}{review}"
        )


def _input_line(group: InputGroup, features: Sequence[float | None]) -> InputLine:
    spec = group.specs[0]
    line = InputLine(
        label=group.label,
        kind=group.kind,
        text=value_text(group, features),
        system=spec.code.system if spec.code else None,
        code=spec.code.code if spec.code else None,
        unit=group.unit,
        demographic=spec.demographic,
    )
    if line.text is None:
        return line
    if group.kind == "numeric":
        return line.model_copy(update={"value": features[group.indices[0]]})
    if group.kind == "flag":
        return line.model_copy(update={"value": float(bool(features[group.indices[0]]))})
    chosen = [s.equals for s, i in zip(group.specs, group.indices, strict=True) if present(features[i]) and features[i]]
    return line.model_copy(update={"category": chosen[0] if chosen else None})


def check_features(fused: FusedPrediction, task: TaskSpec) -> None:
    if fused.features and len(fused.features) != len(task.features):
        raise RejectedInput(
            f"predictions.fused features: {len(fused.features)} values for task {task.name!r}, whose "
            f"task file declares {len(task.features)}",
            "schema",
        )


def build_view(
    report_id: str,
    fused: FusedPrediction,
    task: TaskSpec,
    created_at: datetime,
    card_of: Callable[[ModelRef], ModelCard | None],
    occlusion: tuple[ModelRef, Occlusion] | None,
) -> ReportView:
    check_features(fused, task)
    groups = input_groups(task) if fused.features else []
    models = [
        ModelLine(
            site=c.model.site,
            version=c.model.version,
            weight=c.weight,
            probability=c.probability,
            auc=_auc(card_of(c.model)),
        )
        for c in sorted(fused.contributions, key=lambda c: -c.weight)
    ]
    drivers: list[Driver] = []
    hidden = 0
    attribution, model, not_measured = None, None, [g.label for g in groups if value_text(g, fused.features) is None]
    if occlusion is not None:
        model, result = occlusion
        drivers = [Driver(label=i.label, value=i.value, delta=i.delta) for i in result.influences[:DRIVERS_SHOWN]]
        hidden = len(result.influences) - len(drivers)
        attribution = ATTRIBUTION_METHOD.format(model=f"the {model.site} model {model.version}")
        not_measured = result.not_measured
    return ReportView(
        report_id=report_id,
        record_id=fused.record_id,
        patient=fused.patient,
        hospital=fused.hospital,
        created_at=created_at,
        task=task.name,
        task_title=task.description or humanize(task.name),
        positive_label=task.label.positive_label,
        negative_label=task.label.negative_label,
        probability=fused.probability,
        label=fused.label,
        method=fused.method,
        agreement=fused.agreement,
        needs_review=fused.needs_review,
        review_reasons=list(fused.review_reasons),
        models=models,
        drivers=drivers,
        drivers_not_shown=hidden,
        attribution=attribution,
        attribution_model=model,
        not_measured=not_measured,
        inputs=[_input_line(g, fused.features) for g in groups],
        quality_flags=list(fused.quality_flags),
    )


def _auc(card: ModelCard | None) -> float | None:
    return None if card is None else card.metrics.get("auc")
