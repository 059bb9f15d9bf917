"""Latency percentiles, the per-stage breakdown and the plot (no Kafka here: numbers in, numbers and a PNG out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.topics import Topic
from tests.bench.latency_load import Outgoing
from tests.bench.latency_topics import Arrivals, StageTimes

QUANTILES = (50, 90, 99)


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p90: float
    p99: float
    max: float

    def cells(self) -> str:
        if not self.count:
            return "| – | – | – | – |"
        return f"| {self.p50:,.0f} | {self.p90:,.0f} | {self.p99:,.0f} | {self.max:,.0f} |"


def summarize(milliseconds: Sequence[float]) -> Summary:
    if not len(milliseconds):
        return Summary(0, float("nan"), float("nan"), float("nan"), float("nan"))
    values = np.asarray(milliseconds, dtype=float)
    p50, p90, p99 = np.percentile(values, QUANTILES)
    return Summary(len(values), float(p50), float(p90), float(p99), float(values.max()))


def end_to_end(items: Sequence[Outgoing], received: dict[str, float]) -> list[float]:
    """Milliseconds from each record's planned send to the watcher's receipt of its result (records that got one)."""
    return [(received[i.record_id] - i.planned) * 1000 for i in items if i.record_id in received]


@dataclass(frozen=True)
class Stage:
    name: str
    what: str
    milliseconds: list[float]


def stages(items: Sequence[Outgoing], times: StageTimes, arrivals: Arrivals) -> list[Stage]:
    """Each hop of each record, from the timestamps both ends of the hop have. Percentiles of hops do not add up
    to the end-to-end percentiles (different records are slow at different hops); the p50s roughly do."""
    ingested, clean = times.by_topic[Topic.RECORDS_INGESTED], times.by_topic[Topic.RECORDS_CLEAN]
    fused, reports = times.by_topic[Topic.PREDICTIONS_FUSED], times.by_topic[Topic.REPORTS]
    hops: list[tuple[str, str, dict[str, float], dict[str, float]]] = [
        (
            "sender",
            "planned send → producer accepted it (the load generator's own lag)",
            {i.record_id: i.planned * 1000 for i in items},
            {i.record_id: i.sent * 1000 for i in items},
        ),
        (
            "ingest",
            "sent → on records.ingested (raw topic wait, parse, pseudonymize, acks)",
            {i.record_id: i.sent * 1000 for i in items},
            ingested,
        ),
        ("clean", "records.ingested → records.clean", ingested, clean),
        ("infer", "records.clean → last model's prediction (batching, 5 models)", clean, times.predictions),
        ("fuse", "last prediction → predictions.fused (join in Redis)", times.predictions, fused),
        (
            "delivery",
            "predictions.fused → received by a consumer",
            fused,
            {k: v * 1000 for k, v in arrivals.fused.items()},
        ),
        ("report", "predictions.fused → reports (render HTML/PDF/FHIR, store)", fused, reports),
    ]
    return [
        Stage(name, what, [float(end[k] - start[k]) for k in start.keys() & end.keys()])
        for name, what, start, end in hops
    ]


def plot(
    path: Path,
    fused: Sequence[float],
    reports: Sequence[float],
    offsets: Sequence[float],
    fused_in_order: Sequence[float],
    target_ms: float,
    title: str,
) -> None:
    """Histogram of both latencies (log x) beside the fused latency over the run (does it grow: saturation)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.2))
    values = [v for v in (*fused, *reports) if v > 0]
    if values:
        bins = np.logspace(np.log10(max(min(values), 1.0)), np.log10(max(values) * 1.05), 60)
        left.hist(fused, bins=bins, alpha=0.7, label=f"to predictions.fused (n={len(fused):,})")
        left.hist(reports, bins=bins, alpha=0.5, label=f"to reports (n={len(reports):,})")
    left.axvline(target_ms, color="red", linestyle="--", label=f"target p99 ≤ {target_ms:.0f} ms")
    left.set_xscale("log")
    left.set_xlabel("latency from planned send (ms, log scale)")
    left.set_ylabel("records")
    left.legend(fontsize=8)
    right.scatter(offsets, fused_in_order, s=2, alpha=0.4)
    right.axhline(target_ms, color="red", linestyle="--")
    right.set_yscale("log")
    right.set_xlabel("planned send time (s into the run)")
    right.set_ylabel("latency to predictions.fused (ms, log)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
