"""report wiring: ``predictions.fused`` in (in batches), ``reports`` out; reports served over HTTP from the data dir."""

from __future__ import annotations

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter, ReportFusedBatch
from services.report.metrics import ReportMetrics
from services.report.routes import ReportRoutes
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.service import Service
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import Topic

# A report takes ~10-25 ms of CPU: 50 results are at most about a second of work between commits, and a small
# batch keeps the first result of a batch from waiting long for the last.
BATCH_MAX_RECORDS = 50
BATCH_TIMEOUT_MS = 10


def create_service(settings: Settings | None = None) -> Service:
    service = Service("report", settings)
    out = service.publisher(
        Topic.REPORTS,
        entity="report",
        verb="published",
        schema=ReportMessage,
        description="A report per fused result, with its FHIR RiskAssessment and URL.",
    )
    store = FileReportStore.under(service.settings)
    reporter = Reporter(
        load_tasks(service.settings.tasks_dir),
        RegistryModels(service.settings),
        store,
        ReportMetrics(service.metrics.registry),
        service.settings.public_url("report"),
    )
    service.consume(
        Topic.PREDICTIONS_FUSED,
        read=FusedPrediction,
        handle=ReportFusedBatch(reporter, out),
        max_records=BATCH_MAX_RECORDS,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        description="Fused results from fuse, in batches.",
    )

    routes = ReportRoutes(store, reporter.pdf)
    service.http.get("/reports/{report_id}", routes.report)
    service.http.get("/patients/{pseudonym}/reports", routes.patient_reports)
    return service
