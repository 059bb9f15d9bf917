"""Fused results in batches, and the PDF rendered on demand: the same reports as one at a time, nothing lost."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from pypdf import PdfReader

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.attribution import explanation_candidates, occlusion
from services.report.handlers import Reporter, ReportFusedBatch, report_id_of
from services.report.inputs import input_groups
from services.report.metrics import ReportMetrics
from services.report.render.pdf import render_pdf
from services.report.view import build_view
from shared.errors import RejectedInput
from shared.metrics import ServiceMetrics
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import CE_TIME
from tests.support.factories.report import fused_for, heart_records, heart_task, record_from
from tests.support.fakes import (
    Acknowledgements,
    CountingModels,
    RecordingDeadLetters,
    RecordingPublisher,
    consumed,
    handled,
)
from tests.unit.report.conftest import SITES

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
TOPIC = "unit.predictions.fused"


def record(offset: int, value: bytes, when: str = "2026-01-05T09:30:00.000Z") -> ConsumerRecord:
    headers = [(CE_TIME, when.encode()), ("ce_id", f"fused-{offset}".encode())]
    return consumed(TOPIC, value, offset=offset, key=b"k", headers=headers)


def reporter(settings: Settings, models: object = None) -> tuple[Reporter, ServiceMetrics]:
    metrics = ServiceMetrics("report")
    made = Reporter(
        load_tasks(),
        models or RegistryModels(settings),  # type: ignore[arg-type]
        FileReportStore.under(settings),
        ReportMetrics(metrics.registry),
        "http://127.0.0.1:8106",
    )
    return made, metrics


def subscriber(made: Reporter, metrics: ServiceMetrics, acks: Acknowledgements):
    """The report service's subscriber on fakes; returns it, what it published and what it dead-lettered."""
    out, deadletters = RecordingPublisher(acks), RecordingDeadLetters(acks)

    async def handle(records: list[ConsumerRecord]) -> None:
        await handled(ReportFusedBatch(made, out), records, FusedPrediction, deadletters=deadletters, metrics=metrics)

    return handle, out, deadletters


def batch_of(results: list[FusedPrediction]) -> list[FusedPrediction]:
    return [r.model_copy(update={"record_id": f"batch-{n}-{r.record_id}"}) for n, r in enumerate(results)]


async def test_a_batch_publishes_a_report_per_result_and_dead_letters_the_rest(fresh_settings: Settings) -> None:
    acks = Acknowledgements()
    made, metrics = reporter(fresh_settings)
    handle, out, deadletters = subscriber(made, metrics, acks)
    good = batch_of([fused_for(record_from(h, 2), SITES) for h in ("cleveland", "hungary", "switzerland")])
    unknown_task = good[0].model_copy(update={"record_id": "other", "task": "no_such_task"})
    short = good[1].model_copy(update={"record_id": "short", "features": good[1].features[:4]})
    records = [
        record(0, good[0].model_dump_json().encode()),
        record(1, b"{not json"),
        record(2, unknown_task.model_dump_json().encode()),
        record(3, good[1].model_dump_json().encode()),
        record(4, short.model_dump_json().encode()),
        record(5, good[2].model_dump_json().encode()),
        record(6, good[0].model_dump_json().encode()),
    ]  # a re-delivery inside the batch
    await handle(records)

    assert [m.record_id for m, _, _ in out.sent] == [
        good[0].record_id,
        good[1].record_id,
        good[2].record_id,
        good[0].record_id,
    ]  # in the batch's order
    assert [event_id for _, event_id, _ in out.sent] == [report_id_of(g) for g in (*good, good[0])]
    assert all(key == m.patient for m, _, key in out.sent)  # type: ignore[attr-defined]
    assert [(letter.offset, letter.reason_class) for letter in deadletters.letters] == [
        (1, "malformed"),
        (2, "unknown_task"),
        (4, "schema"),
    ]
    assert "no task file" in deadletters.letters[1].reason and "4 values" in deadletters.letters[2].reason
    assert len(acks.acknowledged) == 7  # every report and dead letter acknowledged before the handler returns
    text = metrics.render().decode()
    assert 'aimass_events_total{outcome="received",service="report"} 6.0' in text
    assert 'aimass_events_total{outcome="emitted",service="report"} 4.0' in text
    store = FileReportStore.under(fresh_settings)
    view = store.view(out.sent[0][1])
    assert view is not None and view.created_at == WHEN  # the report's time is the fused event's ce_time
    assert store.read(out.sent[1][1], "html") is not None


async def test_a_batch_gives_the_reports_that_one_at_a_time_gives(
    fresh_settings: Settings, registry_settings: Settings, tmp_path: Path
) -> None:
    """Same views (attribution included) to the byte; each explaining model called once for the whole batch."""
    results = batch_of([fused_for(r, SITES) for r in heart_records()[::31]])
    counting = CountingModels(RegistryModels(fresh_settings))
    together, _ = reporter(fresh_settings, counting)
    outcomes = together.report_many([(r, WHEN) for r in results])
    assert all(isinstance(o, ReportMessage) for o in outcomes)
    explaining = {explanation_candidates(r.contributions)[0].site for r in results}
    assert sorted(site for site, _ in counting.calls) == sorted(explaining)  # one call per model, not per result

    alone_settings = Settings(var_dir=tmp_path / "alone")
    alone_settings.data_path.mkdir(parents=True)
    (alone_settings.data_path / "models").symlink_to(registry_settings.data_path / "models")
    alone, _ = reporter(alone_settings)
    for fused in results:
        alone.report(fused, WHEN)
    batch_store, alone_store = FileReportStore.under(fresh_settings), FileReportStore.under(alone_settings)
    for message in outcomes:
        report_id = message.report_id  # type: ignore[union-attr]
        assert batch_store.view(report_id) == alone_store.view(report_id)
        for kind in ("html", "fhir"):
            assert batch_store.read(report_id, kind) == alone_store.read(report_id, kind)


async def test_a_failure_inside_a_batch_raises_before_anything_is_published(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A platform failure (here: the disk) re-delivers the whole batch: nothing of it may be published first."""
    acks = Acknowledgements()
    made, metrics = reporter(fresh_settings)
    handle, _, _ = subscriber(made, metrics, acks)
    results = batch_of([fused_for(record_from("hungary", n), SITES) for n in range(3)])
    saved: list[str] = []

    def save_then_fail(view, files, message, entry):  # type: ignore[no-untyped-def]
        if len(saved) == 2:
            raise OSError("No space left on device")
        saved.append(view.report_id)

    monkeypatch.setattr(made.store, "save", save_then_fail)
    with pytest.raises(OSError):
        await handle([record(n, r.model_dump_json().encode()) for n, r in enumerate(results)])
    assert acks.sent == []
    assert 'aimass_events_total{outcome="emitted",service="report"}' not in metrics.render().decode()


async def test_the_pdf_on_demand_is_a_valid_pdf_of_the_same_report(
    fresh_settings: Settings, swiss_fused: FusedPrediction
) -> None:
    made, metrics = reporter(fresh_settings)
    message = made.report(swiss_fused, WHEN)
    pdf = made.pdf(message.report_id)
    assert pdf is not None

    # What the report service rendered per result before: the PDF of the view built from the fused result.
    models = RegistryModels(fresh_settings)
    ref = explanation_candidates(swiss_fused.contributions)[0]
    score = models.scorer(ref)
    assert score is not None
    view = build_view(
        message.report_id,
        swiss_fused,
        heart_task(),
        WHEN,
        models.card,
        (ref, occlusion(score, swiss_fused.features, input_groups(heart_task()))),
    )
    assert pdf == render_pdf(view)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert f"{swiss_fused.probability * 100:.1f}%" in text
    assert swiss_fused.patient in text and "does not replace" in text and view.drivers[0].label in text

    assert made.pdf(message.report_id) == pdf  # kept: the second request renders nothing
    assert 'aimass_report_render_seconds_count{format="pdf"} 1.0' in metrics.render().decode()
    assert FileReportStore.under(fresh_settings).read(message.report_id, "pdf") == pdf
    assert made.pdf("no-such-report") is None and made.pdf("../..") is None


async def test_a_report_made_again_with_other_content_never_serves_the_old_pdf(
    fresh_settings: Settings, swiss_fused: FusedPrediction
) -> None:
    made, _ = reporter(fresh_settings)
    first = made.report(swiss_fused, WHEN)
    old = made.pdf(first.report_id)
    assert old is not None
    made.report(swiss_fused, WHEN)  # re-delivered: the same view keeps its PDF
    assert FileReportStore.under(fresh_settings).read(first.report_id, "pdf") == old

    changed = swiss_fused.model_copy(update={"probability": 0.987, "label": 1})
    again = made.report(changed, WHEN)
    assert again.report_id == first.report_id
    assert FileReportStore.under(fresh_settings).read(first.report_id, "pdf") is None
    new = made.pdf(first.report_id)
    assert new is not None and new != old
    assert "98.7%" in " ".join(page.extract_text() for page in PdfReader(io.BytesIO(new)).pages)


async def test_a_pdf_stored_before_pdfs_were_rendered_on_demand_is_still_served(
    fresh_settings: Settings, swiss_fused: FusedPrediction
) -> None:
    made, metrics = reporter(fresh_settings)
    message = made.report(swiss_fused, WHEN)
    legacy = fresh_settings.data_path / "reports" / message.report_id / "report.pdf"
    legacy.write_bytes(b"%PDF-1.4 stored at report time")
    assert made.pdf(message.report_id) == b"%PDF-1.4 stored at report time"
    assert 'aimass_report_render_seconds_count{format="pdf"} 0.0' in metrics.render().decode()


async def test_what_the_schema_or_fhir_rejects_is_dead_lettered_and_a_time_without_offset_is_utc(
    fresh_settings: Settings,
) -> None:
    made, metrics = reporter(fresh_settings)
    handle, out, deadletters = subscriber(made, metrics, Acknowledgements())
    good = batch_of([fused_for(record_from(h, 3), SITES) for h in ("cleveland", "hungary")])
    no_method = good[0].model_dump_json().replace('"method":"weighted_average"', '"method":""').encode()
    infinite = good[0].model_dump_json().replace('"features":[', '"features":[1e400,', 1).encode()
    await handle(
        [
            record(0, no_method),
            record(1, infinite),
            record(2, good[1].model_dump_json().encode(), when="2026-01-05T09:30:00"),
        ]
    )

    assert [(letter.offset, letter.reason_class) for letter in deadletters.letters] == [(0, "schema"), (1, "schema")]
    assert "method" in deadletters.letters[0][1] and "features" in deadletters.letters[1][1]
    assert [m.record_id for m, _, _ in out.sent] == [good[1].record_id]
    view = FileReportStore.under(fresh_settings).view(out.sent[0][1])
    assert view is not None and view.created_at == WHEN

    # A result the schema lets through but FHIR does not (as a producer with a looser schema could send) is
    # rejected with the reason, and the rest of the batch is still reported.
    loose = FusedPrediction.model_construct(**{**dict(good[0]), "method": ""})
    rejected, reported = made.report_many([(loose, WHEN), (good[0], WHEN)])
    assert isinstance(rejected, RejectedInput) and rejected.reason_class == "fhir_invalid"
    assert "not valid FHIR R4" in rejected.reason and "method" in rejected.reason
    assert isinstance(reported, ReportMessage) and reported.record_id == good[0].record_id
