"""infer's own Prometheus series (names from the project's metric list); labels are task, site, version, provider."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.schemas.models import ModelCard

BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000)
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class InferMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.predictions = Counter(
            "aimass_infer_predictions_total", "Predictions published, by model", ["task", "site"], registry=registry
        )
        self.batch_size = Histogram(
            "aimass_infer_batch_size", "Records per consumed batch", registry=registry, buckets=BATCH_BUCKETS
        )
        self.latency = Histogram(
            "aimass_infer_latency_seconds",
            "One onnxruntime call (one model, one batch)",
            ["task"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.cache = Counter(
            "aimass_infer_cache_total",
            "Prediction cache lookups: hit, miss, or error (Redis failed or bypassed: scored without the cache)",
            ["result"],
            registry=registry,
        )
        self.model_loaded = Gauge(
            "aimass_infer_model_loaded",
            "1 while this model version serves",
            ["task", "site", "version"],
            registry=registry,
        )
        self.provider = Gauge(
            "aimass_infer_execution_provider", "1 for the onnxruntime provider in use", ["provider"], registry=registry
        )
        for result in ("hit", "miss", "error"):
            self.cache.labels(result)

    def loaded(self, card: ModelCard) -> None:
        self.model_loaded.labels(card.task, card.site, card.version).set(1)

    def unloaded(self, card: ModelCard) -> None:
        self.model_loaded.remove(card.task, card.site, card.version)
