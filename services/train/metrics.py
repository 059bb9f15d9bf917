"""train's own Prometheus series (names from the project's metric list); labels are task, site and hospital ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import MAX_HOSPITAL_LABELS, BoundedLabel


class TrainMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.site = BoundedLabel(MAX_HOSPITAL_LABELS)  # site and hospital ids come with the records and requests
        self.runs = Counter(
            "aimass_train_runs_total",
            "Training runs, by outcome (released, rejected, failed)",
            ["task", "site", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "aimass_train_duration_seconds",
            "Wall time of one training run, search included",
            ["task"],
            registry=registry,
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
        )
        self.store_records = Gauge(
            "aimass_train_store_records", "Records in the training store", ["task", "hospital"], registry=registry
        )
