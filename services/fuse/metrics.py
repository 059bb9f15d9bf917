"""fuse's Prometheus series (names fixed by the project's metric list); labels are task and method only."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.metrics import ServiceMetrics

JOIN_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class FuseMetrics:
    """fuse's series, and the service's event counts: the deadline sweeper emits outside any consumed batch."""

    def __init__(self, service: ServiceMetrics) -> None:
        registry = service.registry
        self.counted = service.counted
        self.results = Counter(
            "aimass_fuse_results_total", "Fused results emitted", ["task", "method"], registry=registry
        )
        self.join_wait = Histogram(
            "aimass_fuse_join_wait_seconds",
            "From a join's first prediction to its fused result",
            buckets=JOIN_WAIT_BUCKETS,
            registry=registry,
        )
        self.timeouts = Counter(
            "aimass_fuse_timeouts_total",
            "Joins fused at their deadline with models missing",
            ["task"],
            registry=registry,
        )
        self.missing_models = Counter(
            "aimass_fuse_missing_models_total",
            "Expected models that had not answered when their join was fused",
            ["task"],
            registry=registry,
        )
        self.needs_review = Counter(
            "aimass_fuse_needs_review_total", "Fused results flagged needs_review", ["task"], registry=registry
        )
        self.late = Counter(
            "aimass_fuse_late_predictions_total",
            "Predictions that arrived after their join was fused (counted, not re-fused)",
            ["task"],
            registry=registry,
        )
