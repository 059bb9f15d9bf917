"""clean wiring: ``records.ingested`` (in batches) → ``records.clean`` (+ ``deadletter``)."""

from __future__ import annotations

from services.clean.adapters.redis_seen import RedisSeenEvents
from services.clean.cleaning import Cleaner
from services.clean.code_files import load_code_book
from services.clean.handlers import CleanIngested
from services.clean.metrics import CleanMetrics
from services.clean.routes import CleanRoutes
from shared.auth import SCOPE_PREDICT
from shared.schemas import CanonicalRecord, CleanRecord
from shared.service import Service
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import Topic

# Up to 500 records per batch (two Redis round trips and one wait for the broker's acks each); a batch waits at
# most 10 ms for more records, so a lone record is not held back.
MAX_BATCH = 500
BATCH_TIMEOUT_MS = 10


def create_service(settings: Settings | None = None) -> Service:
    service = Service("clean", settings)
    out = service.publisher(
        Topic.RECORDS_CLEAN,
        entity="record",
        verb="cleaned",
        schema=CleanRecord,
        description="Canonical records, de-duplicated, with quality flags and per-task feature vectors.",
    )
    code_book = load_code_book(service.settings.codes_dir)
    cleaner = Cleaner(load_tasks(service.settings.tasks_dir), code_book)
    seen = RedisSeenEvents(service.redis, service.settings.topic_prefix, service.settings.dedup_ttl_seconds)
    handle = CleanIngested(out, seen, cleaner, CleanMetrics(service.metrics.registry))
    synchronous = CleanRoutes(cleaner)  # for synchronous predictions: one record, nothing published
    service.http.post("/records/$clean", synchronous.clean, guard=service.gate.scoped(SCOPE_PREDICT))
    service.details["code_tables"] = code_book.versions
    service.details["tasks"] = lambda: sorted(cleaner.tasks)

    service.consume(
        Topic.RECORDS_INGESTED,
        read=CanonicalRecord,
        handle=handle,
        max_records=MAX_BATCH,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        description="Pseudonymized canonical records from ingest, in batches.",
    )
    return service
