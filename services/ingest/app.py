"""ingest wiring: ``ingest.raw`` (in batches) → ``records.ingested`` + ``audit`` (+ ``deadletter``); the hospitals'
front doors (MLLP listeners, FHIR REST intake) → ``ingest.raw``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from services.ingest.adapters.claim_check_files import FileClaimChecks
from services.ingest.adapters.fhir_routes import FhirRoutes
from services.ingest.adapters.mllp_listener import MllpListeners
from services.ingest.adapters.predict_routes import PredictRoutes
from services.ingest.adapters.service_calls import ServiceCalls
from services.ingest.documents import Ingested, ReadOptions, read_document
from services.ingest.doors import Door
from services.ingest.fhir_rest import FhirIntake
from services.ingest.handlers import IngestRaw, raw_document
from services.ingest.hospitals import load_tables, mllp_ports
from services.ingest.keys import load_pseudonym_key
from services.ingest.libraries import quiet_parser_libraries
from services.ingest.metrics import DoorMetrics, IngestMetrics
from services.ingest.mllp_intake import MllpIntake
from services.ingest.ports import DocumentReader
from services.ingest.predict import Predictor
from services.ingest.pseudonym import Pseudonymizer
from services.ingest.records import Envelope
from shared.broker import ensure_topics
from shared.events import EventPublisher
from shared.principals import hospital_ids
from shared.schemas import CanonicalRecord
from shared.schemas.audit import AuditEvent
from shared.service import Service
from shared.settings import Settings
from shared.submissions import RawTopic
from shared.tasks import free_text_codes, load_tasks
from shared.topics import Topic, hospital_input_topic

# One broker round trip per batch instead of per document. 200 documents keep a batch of the slowest format (FHIR,
# ~5 ms each) near a second; the wait only matters when the topic is nearly idle.
BATCH_MAX_RECORDS = 200
BATCH_TIMEOUT_MS = 20


def create_service(settings: Settings | None = None) -> Service:
    quiet_parser_libraries()
    service = Service("ingest", settings)
    settings = service.settings
    records = service.publisher(
        Topic.RECORDS_INGESTED,
        entity="record",
        verb="ingested",
        schema=CanonicalRecord,
        description="One pseudonymized canonical record per patient encounter.",
    )
    audit = service.publisher(
        Topic.AUDIT,
        entity="audit",
        verb="recorded",
        schema=AuditEvent,
        description="One event per document ingest handled: who sent what kind, when, which pseudonyms; "
        "never an identifier.",
    )
    tables = load_tables(settings.hospitals_dir)
    options = ReadOptions(
        tables=tables,
        data_root=settings.data_path,
        claim_check_bytes=settings.ingest_claim_check_bytes,
        free_text_codes=free_text_codes(load_tasks(settings.tasks_dir).values()),
    )
    read = partial(
        _read,
        pseudonymize=Pseudonymizer(load_pseudonym_key(settings)),
        max_bytes=settings.max_message_bytes,
        options=options,
    )
    metrics = IngestMetrics(service.metrics.registry)
    handle = IngestRaw(records, audit, FileClaimChecks(settings.data_path), read, metrics, settings.topic_prefix)
    _open_doors(service, read, audit, metrics)
    calls = ServiceCalls(settings)
    PredictRoutes(Predictor(read, calls.post), load_tasks(settings.tasks_dir), service.audit).install(
        service.http, service.gate, settings.max_message_bytes
    )
    service.on_shutdown(calls.close)
    hospitals = hospital_ids(settings.hospitals_dir)
    inputs = [hospital_input_topic(hospital, settings.topic_prefix) for hospital in hospitals]

    @service.on_startup
    async def create_hospital_inputs() -> None:  # the secured stack's admin made them already; a plain one has not
        await ensure_topics(settings, hospitals=hospitals)

    service.details["hospital_tables"] = lambda: sorted(tables)
    service.details["free_text_codes"] = lambda: sorted(f"{system}|{code}" for system, code in options.free_text_codes)
    service.consume(
        Topic.INGEST_RAW,
        *inputs,
        read=raw_document,
        handle=handle,
        max_records=BATCH_MAX_RECORDS,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        description="Hospital documents: FHIR, HL7 v2, CSV, XLSX, JSON, DICOM; in batches. Each hospital publishes "
        "to its own ingest.raw.<hospital> (a ce_source naming another hospital is dead-lettered); the platform's own "
        "principals to ingest.raw.",
    )
    return service


def _open_doors(service: Service, read: DocumentReader, audit: EventPublisher, metrics: IngestMetrics) -> None:
    """The MLLP listeners (one port per hospital, started once the broker is connected, closed before it is) and the
    FHIR REST routes; both check with the stream's reader and write to ``ingest.raw``."""
    settings = service.settings
    raw = RawTopic(service.broker, service.topic(Topic.INGEST_RAW))
    door = Door(read, raw, service.deadletters, audit, metrics, raw.topic)
    doors = DoorMetrics(service.metrics.registry)
    ports = mllp_ports(settings.ingest_mllp_ports, settings.hospitals_dir)
    listeners = MllpListeners(
        MllpIntake(door, doors), ports, settings.ingest_mllp_host, settings.max_message_bytes, doors
    )
    service.app.after_startup(listeners.start)
    service.app.on_shutdown(listeners.stop)
    service.details["mllp_ports"] = listeners.listening
    FhirRoutes(FhirIntake(door, doors)).install(service.http, service.gate, settings.max_message_bytes)


def _read(
    document: bytes,
    headers: Mapping[str, str],
    envelope: Envelope,
    *,
    pseudonymize: Pseudonymizer,
    max_bytes: int,
    options: ReadOptions,
) -> Ingested:
    return read_document(document, headers, envelope, pseudonymize, max_bytes, options)
