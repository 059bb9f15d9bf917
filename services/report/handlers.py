"""report's service layer: a fused result becomes a stored, rendered report and a message on ``reports``.

The report id is derived from (record, task), so a re-delivered fused result re-renders the same report under the
same id and re-publishes the same ``ce_id``: one report per result, whatever the delivery count. The report's time is
the fused event's ``ce_time``, so the re-rendered report is the same report.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from services.report.attribution import Occlusion, explanation_candidates, occlusion
from services.report.inputs import input_groups
from services.report.metrics import ReportMetrics
from services.report.render.fhir import diagnostic_report, risk_assessment, transaction
from services.report.render.html import render_html
from services.report.render.pdf import render_pdf
from services.report.store import ModelSource, ReportEntry, ReportFiles, ReportStore
from services.report.view import ReportView, build_view, check_features
from shared.errors import RejectedInput
from shared.events import EventPublisher
from shared.metrics import ServiceMetrics
from shared.schemas.models import ModelRef
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.tasks import TaskSpec
from shared.topics import derived_event_id

T = TypeVar("T")


def report_id_of(fused: FusedPrediction) -> str:
    return derived_event_id("report", fused.record_id, fused.task)


def parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


class Reporter:
    def __init__(
        self,
        tasks: Mapping[str, TaskSpec],
        models: ModelSource,
        store: ReportStore,
        out: EventPublisher,
        metrics: ServiceMetrics,
        report_metrics: ReportMetrics,
        base_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tasks = tasks
        self.models = models
        self.store = store
        self.out = out
        self.metrics = metrics
        self.report_metrics = report_metrics
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    async def on_fused(self, fused: FusedPrediction, fused_at: datetime | None = None) -> ReportMessage:
        # Rendering (ONNX, PDF) is CPU work: off the event loop, so health checks and HTTP stay responsive.
        message = await asyncio.to_thread(self.report, fused, fused_at or self.clock())
        await self.out.publish(message, event_id=message.report_id, key=message.patient)
        self.metrics.counted("emitted")
        return message

    def report(self, fused: FusedPrediction, created_at: datetime) -> ReportMessage:
        task = self.tasks.get(fused.task)
        if task is None:
            raise RejectedInput(f"fused result for task {fused.task!r}, which has no task file among: "
                                f"{', '.join(sorted(self.tasks)) or 'none'}", "unknown_task")
        check_features(fused, task)
        report_id = report_id_of(fused)
        view = build_view(report_id, fused, task, created_at, self.models.card, self._explain(fused, task))
        url = f"{self.base_url}/reports/{report_id}"
        assessment = self._timed("fhir", task.name, lambda: risk_assessment(view))
        report = diagnostic_report(view, derived_event_id("report", fused.record_id, fused.task, "diagnostic"), url)
        bundle = json.dumps(transaction([assessment, report]), indent=1).encode()
        files = ReportFiles(html=self._timed("html", task.name, lambda: render_html(view)),
                            pdf=self._timed("pdf", task.name, lambda: render_pdf(view)), fhir=bundle)
        message = ReportMessage(report_id=report_id, record_id=fused.record_id, patient=fused.patient,
                                task=fused.task, summary=view.summary, risk_assessment=assessment,
                                diagnostic_report=report, url=url)
        self.store.save(view, files, message, self._entry(view, url))
        return message

    def _explain(self, fused: FusedPrediction, task: TaskSpec) -> tuple[ModelRef, Occlusion] | None:
        if not fused.features:
            return None
        for ref in explanation_candidates(fused.contributions):
            score = self.models.scorer(ref)
            if score is not None:
                return ref, occlusion(score, fused.features, input_groups(task))
        return None

    def _timed(self, fmt: str, task: str, render: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = render()
        self.report_metrics.render_seconds.labels(fmt).observe(time.perf_counter() - start)
        self.report_metrics.rendered.labels(task, fmt).inc()
        return result

    @staticmethod
    def _entry(view: ReportView, url: str) -> ReportEntry:
        return ReportEntry(report_id=view.report_id, record_id=view.record_id, task=view.task,
                           hospital=view.hospital, created_at=view.created_at, probability=view.probability,
                           label=view.label, verdict=view.verdict, needs_review=view.needs_review, url=url)
