"""report wiring: ``predictions.fused`` in, ``reports`` out; reports served over HTTP from the data dir."""

from __future__ import annotations

from faststream.kafka.annotations import KafkaMessage

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter, parse_time
from services.report.metrics import ReportMetrics
from services.report.routes import ReportRoutes
from shared.errors import RejectedInput
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.service import Service
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import CE_TIME, Topic, decode_headers


def create_service(settings: Settings | None = None) -> Service:
    service = Service("report", settings)
    out = service.publisher(Topic.REPORTS, entity="report", verb="published", schema=ReportMessage,
                            description="A report per fused result, with its FHIR RiskAssessment and URL.")
    store = FileReportStore.under(service.settings)
    reporter = Reporter(load_tasks(service.settings.tasks_dir), RegistryModels(service.settings), store, out,
                        service.metrics, ReportMetrics(service.metrics.registry), service.settings.public_url("report"))

    @service.subscriber(Topic.PREDICTIONS_FUSED, description="Fused results from fuse.")
    async def on_fused(message: KafkaMessage) -> None:
        fused = await service.accept(message.raw_message, FusedPrediction)
        if fused is None:
            return
        fused_at = parse_time(decode_headers(message.raw_message.headers).get(CE_TIME))
        try:
            await reporter.on_fused(fused, fused_at)
        except RejectedInput as rejected:
            await service.deadletters.send(message.raw_message, rejected.reason, rejected.reason_class)

    routes = ReportRoutes(store)
    service.http.get("/reports/{report_id}", routes.report)
    service.http.get("/patients/{pseudonym}/reports", routes.patient_reports)
    return service
