"""report's Prometheus series (names fixed by the project's metric list); labels are task and format only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FORMATS = ("html", "pdf", "fhir")


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
