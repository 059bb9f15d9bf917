"""Prometheus metrics every service exports beside FastStream's own ``faststream_*`` series.

Labels carry service names, hospitals, formats and reason classes, never identifiers or values.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest

from shared.settings import get_settings

MAX_HOSPITAL_LABELS = 1000
"""Distinct hospital (site) ids a service labels its series with; later ones are ``other``."""


class BoundedLabel:
    """Label values as they come, up to ``limit`` distinct ones; any later new value is reported as ``overflow``.

    For labels whose values come from outside (hospital ids, the units a hospital writes): a sender with free text,
    or an id per department, could otherwise grow the series, and every scrape, without end."""

    def __init__(self, limit: int, overflow: str = "other") -> None:
        self.limit = limit
        self.overflow = overflow
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return self.overflow


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "aimass_events_total",
            "Input events handled, by outcome (emitted, duplicate, deadlettered, skipped)",
            ["service", "outcome"],
            registry=self.registry,
        )
        self.deadletters = Counter(
            "aimass_deadletters_total",
            "Messages sent to the dead-letter topic, by reason class",
            ["service", "reason"],
            registry=self.registry,
        )
        self.dependency_up = Gauge(
            "aimass_dependency_up",
            "1 while the dependency answered the last readiness check",
            ["service", "dependency"],
            registry=self.registry,
        )
        self.info = Info("aimass_service", "Service build and configuration", registry=self.registry)
        self.info.info({"service": service, "topic_prefix": get_settings().topic_prefix})

    def counted(self, outcome: str, amount: int = 1) -> None:
        self.events.labels(self.service, outcome).inc(amount)

    def zero_faststream_series(self, handlers: Iterable[str]) -> None:
        """Export 0 rather than nothing for handlers that have not received yet (Prometheus practice: an absent
        series cannot be told from a dead target). FastStream creates its series lazily, on the first message."""
        collectors = self.registry._names_to_collectors  # FastStream's own container looks metrics up the same way
        for name in ("faststream_received_messages_total", "faststream_received_messages_in_process"):
            metric = collectors.get(name)
            if metric is not None:
                for handler in handlers:
                    metric.labels(app_name=self.service, broker="kafka", handler=handler)

    def render(self) -> bytes:
        return generate_latest(self.registry)
