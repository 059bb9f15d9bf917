"""The Reporter on real models and a real store on disk, the publisher faked; the HTTP routes on that store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter, ReportFusedBatch, parse_time, report_id_of
from services.report.metrics import ReportMetrics
from shared.errors import RejectedInput
from shared.metrics import ServiceMetrics
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import CE_TIME
from tests.support.fakes import RecordingPublisher, Sent, consumed, handled

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def reporter(settings: Settings) -> tuple[Reporter, ServiceMetrics]:
    metrics = ServiceMetrics("report")
    made = Reporter(
        load_tasks(),
        RegistryModels(settings),
        FileReportStore.under(settings),
        ReportMetrics(metrics.registry),
        "http://127.0.0.1:8106/",
    )
    return made, metrics


async def published(service: Reporter, fused: FusedPrediction, when: datetime) -> Sent:
    """The fused result through the subscriber's path: its report as the batch published it."""
    out = RecordingPublisher()
    record = consumed(
        "unit.predictions.fused", fused.model_dump_json().encode(), headers=[(CE_TIME, when.isoformat().encode())]
    )
    await handled(ReportFusedBatch(service, out), [record], FusedPrediction)
    [sent] = out.sent
    return sent


async def test_a_fused_result_becomes_a_stored_report_and_a_message(
    fresh_settings: Settings, swiss_fused: FusedPrediction
) -> None:
    service, metrics = reporter(fresh_settings)
    message, event_id, key = await published(service, swiss_fused, WHEN)
    assert isinstance(message, ReportMessage) and event_id == message.report_id == report_id_of(swiss_fused)
    assert key == swiss_fused.patient  # the contract's key: the pseudonym
    assert message.url == f"http://127.0.0.1:8106/reports/{message.report_id}"
    assert message.risk_assessment["resourceType"] == "RiskAssessment"
    assert message.diagnostic_report is not None
    store = FileReportStore.under(fresh_settings)
    assert store.read(message.report_id, "html").startswith(b"<!DOCTYPE html>")
    assert store.read(message.report_id, "pdf") is None  # rendered when first asked for, not per result
    text = metrics.render().decode()
    for fmt in ("html", "fhir"):
        assert f'aimass_report_rendered_total{{format="{fmt}",task="heart_disease"}} 1.0' in text
    assert 'aimass_report_render_seconds_count{format="pdf"} 0.0' in text
    assert service.pdf(message.report_id).startswith(b"%PDF")
    assert 'aimass_report_render_seconds_count{format="pdf"} 1.0' in metrics.render().decode()


async def test_a_redelivered_result_rerenders_the_same_report(
    fresh_settings: Settings, swiss_fused: FusedPrediction
) -> None:
    service, _ = reporter(fresh_settings)
    first = await published(service, swiss_fused, WHEN)
    html = FileReportStore.under(fresh_settings).read(first.event_id, "html")
    second = await published(service, swiss_fused, WHEN)
    assert first == second
    assert FileReportStore.under(fresh_settings).read(first.event_id, "html") == html
    assert len(FileReportStore.under(fresh_settings).for_patient(swiss_fused.patient)) == 1


async def test_a_task_without_a_task_file_is_rejected(fresh_settings: Settings, swiss_fused: FusedPrediction) -> None:
    service, _ = reporter(fresh_settings)
    with pytest.raises(RejectedInput, match="task 'nonexistent', which has no task file"):
        service.report(swiss_fused.model_copy(update={"task": "nonexistent"}), WHEN)


async def test_models_absent_from_the_registry_give_a_report_without_attribution(
    tmp_path: object, swiss_fused: FusedPrediction
) -> None:
    settings = Settings(var_dir=tmp_path)  # type: ignore[arg-type]
    service, _ = reporter(settings)
    message = service.report(swiss_fused, WHEN)
    view = FileReportStore.under(settings).view(message.report_id)
    assert view is not None and view.drivers == [] and all(m.auc is None for m in view.models)


def test_report_time_comes_from_the_fused_event() -> None:
    assert parse_time("2026-01-05T09:30:00.000Z") == WHEN
    assert parse_time("not a time") is None and parse_time(None) is None
