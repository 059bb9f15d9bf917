"""report's Prometheus series (names fixed by the project's metric list); labels are task, format, hospital and
outcome classes only: never a patient, an endpoint or a subscription id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import MAX_HOSPITAL_LABELS, BoundedLabel

RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FORMATS = ("html", "pdf", "fhir")
DELIVERY_OUTCOMES = ("delivered", "deadlettered", "cancelled")
ATTEMPT_RESULTS = ("ok", "refused", "timeout", "status", "error")
CDS_OUTCOMES = ("cards", "no_result", "invalid")


class ReportMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rendered = Counter(
            "aimass_report_rendered_total",
            "Reports rendered, by task and format",
            ["task", "format"],
            registry=registry,
        )
        self.render_seconds = Histogram(
            "aimass_report_render_seconds",
            "Time to render one report in one format",
            ["format"],
            buckets=RENDER_BUCKETS,
            registry=registry,
        )
        for fmt in FORMATS:  # exported as 0 before the first report, not absent
            self.render_seconds.labels(fmt)
        self.hospital = BoundedLabel(MAX_HOSPITAL_LABELS)
        self.deliveries = Counter(
            "aimass_report_deliveries_total",
            "Rest-hook deliveries finished, by hospital and outcome (delivered, deadlettered, cancelled: the "
            "subscription was deleted)",
            ["hospital", "outcome"],
            registry=registry,
        )
        self.delivery_attempts = Counter(
            "aimass_report_delivery_attempts_total",
            "Rest-hook POSTs, by result (ok, refused: no connection, timeout, status: a non-2xx answer, error)",
            ["result"],
            registry=registry,
        )
        for result in ATTEMPT_RESULTS:
            self.delivery_attempts.labels(result)
        self.deliveries_pending = Gauge(
            "aimass_report_deliveries_pending",
            "Rest-hook deliveries not done yet (waiting for a retry or being tried), as of the last sweep",
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "aimass_report_delivery_seconds",
            "Time of one rest-hook POST",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.cds_calls = Counter(
            "aimass_report_cds_calls_total",
            "CDS Hooks calls answered, by hook and outcome (cards, no_result, invalid)",
            ["hook", "outcome"],
            registry=registry,
        )

    def delivered(self, hospital: str, outcome: str) -> None:
        self.deliveries.labels(self.hospital(hospital), outcome).inc()
