"""report wiring: ``predictions.fused`` in (in batches), ``reports`` out; reports served over HTTP from the data dir;
the EHRs' doors: CDS Hooks cards and rest-hook subscriptions, whose deliveries read ``reports`` in their own group."""

from __future__ import annotations

from services.report.adapters.fhir_patients import FhirPatients
from services.report.adapters.file_deliveries import FileDeliveryQueue
from services.report.adapters.file_store import FileReportStore
from services.report.adapters.file_subscriptions import FileSubscriptionStore
from services.report.adapters.registry_models import RegistryModels
from services.report.adapters.rest_hook import RestHookSender
from services.report.cds_routes import CdsRoutes
from services.report.delivery import DeliverySweeper, ScheduleDeliveries
from services.report.handlers import Reporter, ReportFusedBatch
from services.report.metrics import ReportMetrics
from services.report.question_routes import QuestionRoutes
from services.report.questioning_routes import QuestioningRoutes
from services.report.routes import ReportRoutes
from services.report.subscription_routes import SubscriptionRoutes
from services.report.timeline_routes import TimelineRoutes
from shared.auth import SCOPE_PREDICT, SCOPE_REPORTS, SCOPE_SUBSCRIBE
from shared.links import LinkSigner
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.secrets import local_secret, secret_path
from shared.service import Service
from shared.settings import Settings
from shared.submissions import RawTopic
from shared.tasks import load_tasks
from shared.topics import Topic, group_id

# A report takes ~10-25 ms of CPU: 50 results are at most about a second of work between commits, and a small
# batch keeps the first result of a batch from waiting long for the last.
BATCH_MAX_RECORDS = 50
BATCH_TIMEOUT_MS = 10
DELIVERY_GROUP = "report-delivery"
"""The delivery consumer's group (``<prefix>-report-delivery``): it reads ``reports`` apart from any other reader."""
DELIVERY_BATCH_MAX_RECORDS = 200  # scheduling is a file write per subscription: cheap


def create_service(settings: Settings | None = None) -> Service:
    service = Service("report", settings)
    settings = service.settings
    base_url = settings.public_url("report")
    out = service.publisher(
        Topic.REPORTS,
        entity="report",
        verb="published",
        schema=ReportMessage,
        description="A report per fused result, with its FHIR RiskAssessment and URL.",
    )
    store = FileReportStore.under(settings)
    metrics = ReportMetrics(service.metrics.registry)
    tasks = load_tasks(settings.tasks_dir)
    models = RegistryModels(settings)
    reporter = Reporter(tasks, models, store, metrics, base_url)
    service.consume(
        Topic.PREDICTIONS_FUSED,
        read=FusedPrediction,
        handle=ReportFusedBatch(reporter, out),
        max_records=BATCH_MAX_RECORDS,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        description="Fused results from fuse, in batches.",
    )

    links = LinkSigner(
        local_secret(settings.link_key, secret_path(settings, "link.key"), "AIMASS_LINK_KEY"),
        settings.link_ttl_seconds,
    )
    service.gate.links = links
    routes = ReportRoutes(store, reporter.pdf, service.audit, links, base_url)
    reports = service.gate.scoped(SCOPE_REPORTS)
    report_or_link = service.gate.scoped_or_link(SCOPE_REPORTS)
    service.http.get("/reports/{report_id}", routes.report, guard=report_or_link)
    service.http.post("/reports/{report_id}/link", routes.link, guard=reports)
    service.http.get("/patients/{pseudonym}/reports", routes.patient_reports, guard=reports)
    service.http.post("/patients/{pseudonym}/link", routes.patient_link, guard=reports)
    service.http.get("/patients/{pseudonym}/reports/{report_id}", routes.report, guard=report_or_link)
    predict = service.gate.scoped(SCOPE_PREDICT)
    service.http.get("/fhir/RiskAssessment/{report_id}", routes.risk_assessment, guard=predict)

    # Timeline (issue 20, item 1): a patient's results over time, the search across patients, the history's export.
    # No pattern shadows another: ``{pseudonym}`` matches one path segment, so ``/patients/{pseudonym}/reports`` and
    # the pages below a patient never reach the timeline. The search needs a token (no link is made for a list).
    timeline = TimelineRoutes(store, tasks, service.audit)
    patient_pages = service.gate.scoped_or_link(SCOPE_REPORTS)
    service.http.get("/patients", timeline.search, guard=reports)
    service.http.get("/patients/{pseudonym}", timeline.timeline, guard=patient_pages)
    service.http.get("/patients/{pseudonym}/export", timeline.export, guard=patient_pages)

    # Questions about a result (issue 20, item 3): answered from the report's own data (and the patient's previous
    # report of the task), every answer audited with its intent, never the question's text. The page hangs under the
    # report, as the report's own page and as its patient's, so a report's or a patient's signed link opens it.
    questions = QuestionRoutes(store, service.audit)
    service.http.get("/reports/{report_id}/questions", questions.page, guard=report_or_link)
    service.http.post("/reports/{report_id}/questions", questions.ask, guard=reports)
    service.http.get("/patients/{pseudonym}/reports/{report_id}/questions", questions.page, guard=report_or_link)
    service.http.post("/patients/{pseudonym}/reports/{report_id}/questions", questions.ask, guard=reports)

    # CDS Hooks: the EHR names its patient by its own id, so report needs the pseudonym key ingest uses.
    pseudonym_key = local_secret(settings.pseudonym_key, settings.var_dir / "pseudonym.key", "AIMASS_PSEUDONYM_KEY")
    cds = CdsRoutes(tasks, store, pseudonym_key, links, service.audit, base_url, FhirPatients(), metrics=metrics)
    service.http.get("/cds-services", cds.discovery, guard=None)  # discovery carries no patient data (the spec's way)
    service.http.post("/cds-services/{service_id}", cds.call, guard=predict)

    # Questioning (issue 20, item 2): the missing inputs that could change a decision, asked one at a time; an
    # answer is the hospital's observation, written back to ingest.raw as that hospital (a door, like ingest's), and
    # flows through the whole pipeline. Answering needs system/Bundle.write or a link made to answer.
    answers = RawTopic(service.broker, service.topic(Topic.INGEST_RAW))
    questioning = QuestioningRoutes(tasks, store, models, answers, service.audit, pseudonym_key)
    service.http.get("/patients/{pseudonym}/questions/{task}", questioning.page, guard=patient_pages)
    service.http.post("/patients/{pseudonym}/questions/{task}", questioning.answer, guard=patient_pages)

    # Rest-hook subscriptions: stored and scheduled on the report volume, delivered by a sweeper in every replica.
    subscriptions = FileSubscriptionStore.under(settings)
    queue = FileDeliveryQueue.under(settings)
    sender = RestHookSender(settings.report_delivery_timeout_seconds)
    sweeper = DeliverySweeper(
        queue,
        subscriptions,
        sender,
        service.deadletters,
        metrics,
        base_url,
        budget_seconds=settings.report_delivery_retry_seconds,
        timeout_seconds=settings.report_delivery_timeout_seconds,
    )
    service.consume(
        Topic.REPORTS,
        read=ReportMessage,
        handle=ScheduleDeliveries(subscriptions, queue, store, sweeper.wake),
        group_id=group_id(DELIVERY_GROUP, settings.topic_prefix),
        max_records=DELIVERY_BATCH_MAX_RECORDS,
        description="Reports, to deliver each to the hospital's rest-hook subscribers (its own consumer group).",
    )
    service.on_startup(sweeper.start)
    service.on_shutdown(sender.close)
    service.on_shutdown(sweeper.stop)  # on_shutdown puts each first: the sweeper stops before the sender closes
    subscribe = service.gate.scoped(SCOPE_SUBSCRIBE)
    hooks = SubscriptionRoutes(tasks, subscriptions, service.audit, base_url)
    service.http.post("/fhir/Subscription", hooks.create, guard=subscribe)
    service.http.get("/fhir/Subscription", hooks.search, guard=subscribe)
    service.http.get("/fhir/Subscription/{subscription_id}", hooks.read, guard=subscribe)
    service.http.route(("DELETE",), "/fhir/Subscription/{subscription_id}", hooks.delete, guard=subscribe)

    return service
