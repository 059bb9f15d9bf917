"""report's service layer: fused results become stored, rendered reports and messages on ``reports``.

Fused results arrive in batches (``ReportFusedBatch``): the attribution of every result in the batch runs as one
onnxruntime call per model, the rendering runs off the event loop, and the batch returns only after every report
message and dead letter is acknowledged, so the commit that follows never skips an unpublished report. A raise
(disk, broker) re-delivers the whole batch, which is safe because reports are made again identically.

The report id is derived from (record, task), so a re-delivered fused result re-renders the same report under the
same id and re-publishes the same ``ce_id``: one report per result, whatever the delivery count. The report's time is
the fused event's ``ce_time``, so the re-rendered report is the same report.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import ValidationError

from services.report.attribution import Occlusion, Scorer, explanation_candidates, occlusions
from services.report.inputs import input_groups
from services.report.metrics import ReportMetrics
from services.report.ports import ModelSource, ReportEntry, ReportFiles, ReportStore
from services.report.render.fhir import diagnostic_report, risk_assessment, transaction
from services.report.render.html import render_html
from services.report.render.pdf import render_pdf
from services.report.view import ReportView, build_view, check_features
from shared.errors import RejectedInput, describe_validation_error
from shared.intake import Batch
from shared.ports import Publisher
from shared.schemas.models import ModelRef
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.tasks import TaskSpec
from shared.topics import CE_TIME, derived_event_id

T = TypeVar("T")


def report_id_of(fused: FusedPrediction) -> str:
    return derived_event_id("report", fused.record_id, fused.task)


def parse_time(value: str | None) -> datetime | None:
    """A ``ce_time`` header as an aware time (one without an offset is UTC, as the contract's times are)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


Explanation = tuple[ModelRef, Occlusion] | None
ReportOrRejection = ReportMessage | RejectedInput


class Reporter:
    def __init__(
        self,
        tasks: Mapping[str, TaskSpec],
        models: ModelSource,
        store: ReportStore,
        metrics: ReportMetrics,
        base_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tasks = tasks
        self.models = models
        self.store = store
        self.metrics = metrics
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    def report(self, fused: FusedPrediction, fused_at: datetime) -> ReportMessage:
        """One fused result's report, made and stored; ``RejectedInput`` when it cannot be."""
        [made] = self.report_many([(fused, fused_at)])
        if isinstance(made, RejectedInput):
            raise made
        return made

    def report_many(self, items: Sequence[tuple[FusedPrediction, datetime]]) -> list[ReportOrRejection]:
        """Each fused result's report, made and stored; a ``RejectedInput`` in place of one that cannot be."""
        outcomes: list[ReportOrRejection | TaskSpec] = [self._task_for(fused) for fused, _ in items]
        valid = [(index, task) for index, task in enumerate(outcomes) if isinstance(task, TaskSpec)]
        explanations = self._explain([(items[index][0], task) for index, task in valid])
        for (index, task), explanation in zip(valid, explanations, strict=True):
            try:
                outcomes[index] = self._report(items[index][0], task, items[index][1], explanation)
            except ValidationError as invalid:  # the FHIR output rejected what the fused result's schema let through
                outcomes[index] = RejectedInput(
                    "the report of this fused result is not valid FHIR R4: " + describe_validation_error(invalid),
                    "fhir_invalid",
                )
        return outcomes  # type: ignore[return-value]  # every TaskSpec was replaced by its report

    def pdf(self, report_id: str) -> bytes | None:
        """The report as PDF: the one kept for its view, else rendered from the stored view now and kept."""
        kept = self.store.read(report_id, "pdf")
        if kept is not None:
            return kept
        view = self.store.view(report_id)
        if view is None:
            return None
        pdf = self._timed("pdf", view.task, lambda: render_pdf(view))
        self.store.keep_pdf(view, pdf)
        return pdf

    def _task_for(self, fused: FusedPrediction) -> TaskSpec | RejectedInput:
        task = self.tasks.get(fused.task)
        if task is None:
            return RejectedInput(
                f"fused result for task {fused.task!r}, which has no task file among: "
                f"{', '.join(sorted(self.tasks)) or 'none'}",
                "unknown_task",
            )
        try:
            check_features(fused, task)
        except RejectedInput as rejected:
            return rejected
        return task

    def _report(
        self, fused: FusedPrediction, task: TaskSpec, created_at: datetime, explanation: Explanation
    ) -> ReportMessage:
        report_id = report_id_of(fused)
        view = build_view(report_id, fused, task, created_at, self.models.card, explanation)
        url = f"{self.base_url}/reports/{report_id}"
        assessment = self._timed("fhir", task.name, lambda: risk_assessment(view))
        report = diagnostic_report(view, derived_event_id("report", fused.record_id, fused.task, "diagnostic"), url)
        bundle = json.dumps(transaction([assessment, report]), indent=1).encode()
        files = ReportFiles(html=self._timed("html", task.name, lambda: render_html(view)), fhir=bundle)
        message = ReportMessage(
            report_id=report_id,
            record_id=fused.record_id,
            patient=fused.patient,
            task=fused.task,
            summary=view.summary,
            risk_assessment=assessment,
            diagnostic_report=report,
            url=url,
        )
        self.store.save(view, files, message, self._entry(view, url))
        return message

    def _explain(self, cases: Sequence[tuple[FusedPrediction, TaskSpec]]) -> list[Explanation]:
        """Which model explains each result (see ``explanation_candidates``), and the occlusion of every result
        explained by one model in one call of that model."""
        scorers: dict[ModelRef, Scorer | None] = {}
        by_model: dict[tuple[ModelRef, str], list[int]] = {}
        for index, (fused, task) in enumerate(cases):
            if not fused.features:
                continue
            for ref in explanation_candidates(fused.contributions):
                if ref not in scorers:
                    scorers[ref] = self.models.scorer(ref)
                if scorers[ref] is not None:
                    by_model.setdefault((ref, task.name), []).append(index)
                    break
        explanations: list[Explanation] = [None] * len(cases)
        for (ref, _), indices in by_model.items():
            groups = input_groups(cases[indices[0]][1])
            score = scorers[ref]
            assert score is not None
            for index, result in zip(
                indices, occlusions(score, [(cases[i][0].features, groups) for i in indices]), strict=True
            ):
                explanations[index] = (ref, result)
        return explanations

    def _timed(self, fmt: str, task: str, render: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = render()
        self.metrics.render_seconds.labels(fmt).observe(time.perf_counter() - start)
        self.metrics.rendered.labels(task, fmt).inc()
        return result

    @staticmethod
    def _entry(view: ReportView, url: str) -> ReportEntry:
        return ReportEntry(
            report_id=view.report_id,
            record_id=view.record_id,
            task=view.task,
            hospital=view.hospital,
            created_at=view.created_at,
            probability=view.probability,
            label=view.label,
            verdict=view.verdict,
            needs_review=view.needs_review,
            url=url,
        )


@dataclass
class ReportFusedBatch:
    """The subscriber's logic: a batch of fused results in, their reports published out."""

    reporter: Reporter
    out: Publisher

    async def __call__(self, batch: Batch[FusedPrediction]) -> None:
        clock = self.reporter.clock
        items = [(item.event, parse_time(item.headers.get(CE_TIME)) or clock()) for item in batch]
        # Rendering (ONNX, FHIR validation) is CPU work: off the event loop, so health checks and HTTP stay responsive.
        made = await asyncio.to_thread(self.reporter.report_many, items)
        for item, report in zip(batch, made, strict=True):
            if isinstance(report, RejectedInput):
                await batch.reject(item.record, report)
                continue
            await batch.send(self.out, report, event_id=report.report_id, key=report.patient)
            batch.count("emitted")
