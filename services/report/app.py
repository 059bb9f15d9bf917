"""report wiring: ``predictions.fused`` in (in batches), ``reports`` out; reports served over HTTP from the data dir."""

from __future__ import annotations

from services.report.adapters.fhir_patients import FhirPatients
from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.cds_routes import CdsRoutes
from services.report.handlers import Reporter, ReportFusedBatch
from services.report.metrics import ReportMetrics
from services.report.routes import ReportRoutes
from shared.auth import SCOPE_PREDICT, SCOPE_REPORTS
from shared.links import LinkSigner
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.secrets import local_secret, secret_path
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

    links = LinkSigner(
        local_secret(service.settings.link_key, secret_path(service.settings, "link.key"), "AIMASS_LINK_KEY"),
        service.settings.link_ttl_seconds,
    )
    service.gate.links = links
    routes = ReportRoutes(store, reporter.pdf, service.audit, links, service.settings.public_url("report"))
    reports = service.gate.scoped(SCOPE_REPORTS)
    service.http.get("/reports/{report_id}", routes.report, guard=service.gate.scoped_or_link(SCOPE_REPORTS))
    service.http.post("/reports/{report_id}/link", routes.link, guard=reports)
    service.http.get("/patients/{pseudonym}/reports", routes.patient_reports, guard=reports)

    # CDS Hooks: the EHR names its patient by its own id, so report needs the pseudonym key ingest uses.
    pseudonym_key = local_secret(
        service.settings.pseudonym_key, service.settings.var_dir / "pseudonym.key", "AIMASS_PSEUDONYM_KEY"
    )
    cds = CdsRoutes(
        reporter.tasks,
        store,
        pseudonym_key,
        links,
        service.audit,
        service.settings.public_url("report"),
        FhirPatients(),
    )
    service.http.get("/cds-services", cds.discovery, guard=None)  # discovery carries no patient data (the spec's way)
    service.http.post("/cds-services/{service_id}", cds.call, guard=service.gate.scoped(SCOPE_PREDICT))
    return service
