"""ingest's own Prometheus series (beside the shared ``aimass_events_total`` and ``aimass_deadletters_total``).

Labels are hospital ids, formats and reason classes: never identifiers or values.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_HOSPITAL_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PARSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def hospital_label(hospital: str | None) -> str:
    """The hospital id as a label; anything that does not look like an id (a hostile ce_source) becomes
    "invalid" so that it cannot blow up the series count or smuggle text into the metrics."""
    return hospital if hospital and _HOSPITAL_LABEL.fullmatch(hospital) else "invalid"


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "aimass_ingest_messages_total",
            "Documents received, by hospital and format",
            ["hospital", "format"],
            registry=registry,
        )
        self.parse_failures = Counter(
            "aimass_ingest_parse_failures_total",
            "Documents or parts (entries, rows, OBX) rejected, by reason class",
            ["reason"],
            registry=registry,
        )
        self.bytes = Counter(
            "aimass_ingest_bytes_total", "Document bytes received, by hospital", ["hospital"], registry=registry
        )
        self.free_text_dropped = Counter(
            "aimass_ingest_free_text_dropped_total",
            "Free-text observation values and reference ranges dropped (Safe Harbor; no task allowlists their code)",
            ["hospital", "format"],
            registry=registry,
        )
        self.parse_seconds = Histogram(
            "aimass_ingest_parse_seconds",
            "Time to parse and pseudonymize one document",
            ["format"],
            buckets=PARSE_BUCKETS,
            registry=registry,
        )

    def received(self, hospital: str | None, source_format: str, size: int, seconds: float) -> None:
        label = hospital_label(hospital)
        self.messages.labels(label, source_format).inc()
        self.bytes.labels(label).inc(size)
        self.parse_seconds.labels(source_format).observe(seconds)

    def failed(self, reason_class: str, amount: int = 1) -> None:
        self.parse_failures.labels(reason_class).inc(amount)

    def dropped_free_text(self, hospital: str | None, source_format: str, amount: int) -> None:
        if amount:
            self.free_text_dropped.labels(hospital_label(hospital), source_format).inc(amount)


class DoorMetrics:
    """ingest's front doors: messages per MLLP port and what they were answered, open connections, listeners that
    could not bind, and FHIR REST documents taken or refused."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.mllp_messages = Counter(
            "aimass_ingest_mllp_messages_total",
            "MLLP messages received, by hospital (the port) and the first acknowledgement code sent back",
            ["hospital", "ack"],
            registry=registry,
        )
        self.mllp_connections = Gauge(
            "aimass_ingest_mllp_connections",
            "Open MLLP connections, by hospital",
            ["hospital"],
            registry=registry,
        )
        self.mllp_listening = Gauge(
            "aimass_ingest_mllp_listening",
            "1 while the hospital's MLLP port listens, 0 when it could not be bound",
            ["hospital"],
            registry=registry,
        )
        self.fhir_documents = Counter(
            "aimass_ingest_fhir_documents_total",
            "Documents posted to the FHIR REST intake, by hospital and outcome (accepted, rejected)",
            ["hospital", "outcome"],
            registry=registry,
        )

    def mllp_message(self, hospital: str, ack: str) -> None:
        self.mllp_messages.labels(hospital_label(hospital), ack).inc()

    def listening(self, hospital: str, up: bool) -> None:
        self.mllp_listening.labels(hospital_label(hospital)).set(1 if up else 0)

    def connected(self, hospital: str, change: int) -> None:
        self.mllp_connections.labels(hospital_label(hospital)).inc(change)

    def fhir_document(self, hospital: str, outcome: str, amount: int = 1) -> None:
        if amount:
            self.fhir_documents.labels(hospital_label(hospital), outcome).inc(amount)
