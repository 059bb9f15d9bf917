"""Latency under load: the whole pipeline (ingest, clean, infer, fuse, report as real processes, five real ONNX
models) fed real heart-disease documents at a fixed rate; latency from the planned send to the fused result and
to the report, and per stage from the Kafka timestamps of the topics in between.

``BENCH_LATENCY_RATES`` (records/s, comma-separated, default 20,50,100,1000: one run each, on its own topics and
processes), ``BENCH_LATENCY_SECONDS`` (default 30), ``BENCH_LATENCY_DRAIN_SECONDS`` (how long to wait for results
after the last send, default 60), ``BENCH_LATENCY_TARGET_MS`` (default 100, the p99 target to the fused result) and
``BENCH_LATENCY_REPORT_NICE`` (default 10) set the runs. report runs at that lower CPU priority: its rendering is not
on the way to the fused result, and in a deployment it has its own pods; on a 2-core machine it would otherwise take
the cores the hot path needs. The plots go to docs/images/latency-<rate>rps.png.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.broker import ensure_topics
from shared.registry import model_dir
from shared.settings import PROJECT_ROOT, Settings
from shared.tasks import load_tasks
from shared.topics import Topic, topic_name
from tests.bench.latency_load import Outgoing, documents, send_open_loop
from tests.bench.latency_stats import Summary, end_to_end, plot, stages, summarize
from tests.bench.latency_topics import Arrivals, StageTimes, Watcher, stage_times
from tests.support.kafka import producer
from tests.support.models import heart_task, write_card, write_model
from tests.support.processes import ServiceProcess, start_all, test_settings

SERVICES = ("ingest", "clean", "infer", "fuse", "report")
IMAGES = PROJECT_ROOT / "docs" / "images"
WARM_UP_RECORDS = 40
# Cross-site AUCs of the kind train reports (each model scored on the other hospitals' held-out data), so fuse
# weighs the five models differently, as it would in production.
CROSS_SITE = {
    "cleveland": {"hungary": 0.86, "va-long-beach": 0.71, "switzerland": 0.66},
    "hungary": {"cleveland": 0.84, "va-long-beach": 0.73, "switzerland": 0.70},
    "va-long-beach": {"cleveland": 0.80, "hungary": 0.88, "switzerland": 0.69},
    "switzerland": {"cleveland": 0.62, "hungary": 0.79, "va-long-beach": 0.64},
    "pooled": {"cleveland": 0.87, "hungary": 0.89, "va-long-beach": 0.75, "switzerland": 0.72},
}


@dataclass(frozen=True)
class Load:
    rate: float
    seconds: float
    drain_seconds: float
    target_ms: float
    report_nice: int

    @classmethod
    def from_environment(cls) -> list[Load]:
        rates = os.environ.get("BENCH_LATENCY_RATES", os.environ.get("BENCH_LATENCY_RATE", "20,50,100,1000"))
        return [
            cls(
                rate=float(rate),
                seconds=float(os.environ.get("BENCH_LATENCY_SECONDS", "30")),
                drain_seconds=float(os.environ.get("BENCH_LATENCY_DRAIN_SECONDS", "60")),
                target_ms=float(os.environ.get("BENCH_LATENCY_TARGET_MS", "100")),
                report_nice=int(os.environ.get("BENCH_LATENCY_REPORT_NICE", "10")),
            )
            for rate in rates.split(",")
            if rate.strip()
        ]

    @property
    def records(self) -> int:
        return int(self.rate * self.seconds)


def write_models(settings: Settings) -> None:
    """Five real ONNX heart-disease models (four hospitals and a pooled one), cards with cross-site AUCs."""
    task = heart_task()
    for seed, (site, cross_site) in enumerate(CROSS_SITE.items()):
        card, _ = write_model(settings, task.name, site, task.feature_names, seed=seed)
        card = card.model_copy(update={"cross_site": cross_site, "metrics": {"auc": 0.8}})
        write_card(model_dir(settings, card.task, card.site, card.version), card)


async def publish_and_follow(
    settings: Settings, watcher: Watcher, items: list[Outgoing], rate: float, drain_seconds: float
) -> Arrivals:
    arrivals = Arrivals({i.record_id for i in items})
    client = await producer(settings)
    try:
        deadline = time.monotonic() + 0.5 + len(items) / rate + drain_seconds
        following = asyncio.create_task(watcher.follow(arrivals, deadline))
        await send_open_loop(client, topic_name(Topic.INGEST_RAW, settings.topic_prefix), items, rate)
        await following
    finally:
        await client.stop()
    return arrivals


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_cpu(processes: dict[str, ServiceProcess]) -> dict[str, float]:
    return {name: cpu_seconds(p.process.pid) for name, p in processes.items() if p.process is not None}


@dataclass
class Measured:
    load: Load
    items: list[Outgoing]
    arrivals: Arrivals
    times: StageTimes
    load_average: tuple[float, float]
    started: datetime
    cpu: dict[str, float]  # CPU seconds each service used during the load and its drain


async def measure(base: Settings, load: Load) -> Measured:
    settings = test_settings(base.var_dir / "latency", f"{base.topic_prefix}latency-{uuid.uuid4().hex[:4]}.")
    await ensure_topics(settings)
    write_models(settings)
    # Warm-up encounters dated years earlier: the same rows on the same dates would be content duplicates.
    warm_up = documents(WARM_UP_RECORDS, start=datetime(2001, 1, 1, tzinfo=UTC))
    items = documents(load.records)
    processes: dict[str, ServiceProcess] = await asyncio.to_thread(start_all, SERVICES, settings)
    report = processes["report"].process
    if report is not None:
        os.setpriority(os.PRIO_PROCESS, report.pid, load.report_nice)
    watcher = Watcher(settings)
    try:
        await watcher.start()
        # First records pay for connections, ONNX sessions and imports; they are not what the load measures.
        await publish_and_follow(settings, watcher, warm_up, 20, drain_seconds=120)
        load_before, started, cpu_before = os.getloadavg()[0], datetime.now(UTC), service_cpu(processes)
        print(f"bench: latency: {load.records:,} records at {load.rate:,.0f}/s …", file=sys.stderr, flush=True)
        arrivals = await publish_and_follow(settings, watcher, items, load.rate, load.drain_seconds)
        load_after = os.getloadavg()[0]
        cpu = {name: seconds - cpu_before[name] for name, seconds in service_cpu(processes).items()}
        times = await stage_times(settings, arrivals.awaited)
    finally:
        await watcher.stop()
        for process in processes.values():
            process.stop()
    return Measured(load, items, arrivals, times, (load_before, load_after), started, cpu)


def row(name: str, summary: Summary, total: int, over_target: int) -> str:
    return f"| {name} | {summary.count:,} of {total:,} {summary.cells()} {over_target:,} | {total - summary.count:,} |"


def section(m: Measured) -> str:
    load, items, arrivals = m.load, m.items, m.arrivals
    fused, reports = end_to_end(items, arrivals.fused), end_to_end(items, arrivals.reports)
    to_fused, to_report = summarize(fused), summarize(reports)
    span = max(items[-1].sent - items[0].sent, 1e-9)
    results_span = max((max(arrivals.fused.values()) - min(arrivals.fused.values())) if arrivals.fused else 0, 1e-9)
    send_lag = summarize([(i.sent - i.planned) * 1000 for i in items])
    met = to_fused.count == len(items) and to_fused.p99 <= load.target_ms
    in_order = [
        (i.planned - items[0].planned, (arrivals.fused[i.record_id] - i.planned) * 1000)
        for i in items
        if i.record_id in arrivals.fused
    ]
    image = IMAGES / f"latency-{load.rate:g}rps.png"
    plot(
        image,
        fused,
        reports,
        [o for o, _ in in_order],
        [v for _, v in in_order],
        load.target_ms,
        f"{len(items):,} records at {load.rate:,.0f}/s planned ({len(items) / span:,.0f}/s sent), "
        f"{m.started:%Y-%m-%d %H:%M} UTC",
    )
    cpu = ", ".join(f"{name} {seconds * 1000 / len(items):.2f}" for name, seconds in m.cpu.items())
    lines = [
        f"#### {load.rate:,.0f} records/s",
        "",
        f"Run {m.started:%Y-%m-%d %H:%M} UTC; 1-minute load average {m.load_average[0]:.2f} before, "
        f"{m.load_average[1]:.2f} after the load. {len(items):,} documents at {load.rate:,.0f} records/s for "
        f"{load.seconds:.0f} s; results not received {load.drain_seconds:.0f} s after the last send count as missing.",
        "",
        f"| from planned send to | received | p50 ms | p90 ms | p99 ms | max ms | over {load.target_ms:.0f} ms | "
        "missing |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        row("predictions.fused", to_fused, len(items), sum(v > load.target_ms for v in fused)),
        row("reports", to_report, len(items), sum(v > load.target_ms for v in reports)),
        "",
        f"- Sent: {len(items) / span:,.0f} records/s achieved against {load.rate:,.0f} planned (sender lag p50 "
        f"{send_lag.p50:,.0f} ms, p99 {send_lag.p99:,.0f} ms, max {send_lag.max:,.0f} ms).",
        f"- Fused results received: {len(arrivals.fused) / results_span:,.0f}/s between the first and the last; "
        f"reports: {len(arrivals.reports):,} in all.",
        f"- Target p99 ≤ {load.target_ms:.0f} ms to the fused result: **{'met' if met else 'not met'}** "
        f"(p99 {to_fused.p99:,.0f} ms{'' if to_fused.count == len(items) else ', and some results missing'}).",
        f"- CPU per record, ms (each service's user + system time during the load and its drain, over the records "
        f"sent): {cpu}.",
        "",
        "Per stage, from the Kafka timestamps (CreateTime: when each service handed its output to Kafka) of the "
        "topics in between; a hop's percentiles are over the records seen at both its ends:",
        "",
        "| stage | hop | records | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for stage in stages(items, m.times, arrivals):
        s = summarize(stage.milliseconds)
        lines.append(f"| {stage.name} | {stage.what} | {s.count:,} | {s.p50:,.0f} | {s.p99:,.0f} | {s.max:,.0f} |")
    lines += [
        "",
        f"![Latency histogram and latency over the run at {load.rate:,.0f} records/s]"
        f"({image.relative_to(PROJECT_ROOT / 'docs')})",
        "",
    ]
    return "\n".join(lines)


def summary(runs: list[Measured]) -> str:
    """The section's head: how the runs were made, and one line per rate."""
    first = runs[0].load
    deadline = load_tasks()[heart_task().name].fusion.deadline_seconds
    lines = [
        "### Latency under load: ingest.raw → predictions.fused → reports",
        "",
        "ingest, clean, infer, fuse and report run as real processes (`aimass run`), five ONNX heart-disease models "
        "(four hospitals and a pooled one, cards with cross-site AUCs) in the registry, so every record is scored "
        "five times and fuse joins five predictions. Canonical JSON documents from the real UCI rows (each repeat a "
        "new encounter date, so clean's content de-duplication keeps it) are sent to `ingest.raw` on an open-loop "
        "schedule: send times are fixed in advance and latency counts from the planned time, so a sender that falls "
        "behind shows as latency. A consumer of `predictions.fused` and `reports` stamps each result on receipt. "
        f"{WARM_UP_RECORDS} warm-up records go through first and are not counted. Each rate runs on its own topics "
        f"and service processes. report runs at nice {first.report_nice}: its rendering is not on the way to the "
        "fused result, and in a deployment it has its own pods; here it shares two cores with everything else.",
        "",
        f"Settings in force: batch subscribers (ingest, clean, fuse, report) take what has arrived, up to 500 "
        f"records; infer batches up to {batching_note()}; fuse emits a join as soon as every active model "
        f"answered, its deadline ({deadline:g} s, task file) only closes joins a model never answers; producers send "
        "with linger_ms=0 and acks=all.",
        "",
        f"| records/s | sent | p50 to fused, ms | p99 to fused, ms | missing | p99 ≤ {first.target_ms:.0f} ms | "
        "p50 to report, ms | reports/s |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for m in runs:
        fused = summarize(end_to_end(m.items, m.arrivals.fused))
        reports = summarize(end_to_end(m.items, m.arrivals.reports))
        times = sorted(m.arrivals.reports.values())
        report_rate = len(times) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else 0.0
        met = fused.count == len(m.items) and fused.p99 <= m.load.target_ms
        lines.append(
            f"| {m.load.rate:,.0f} | {len(m.items):,} | {fused.p50:,.0f} | {fused.p99:,.0f} | "
            f"{len(m.items) - fused.count:,} | {'met' if met else '**not met**'} | {reports.p50:,.0f} | "
            f"{report_rate:,.0f} |"
        )
    return "\n".join([*lines, ""])


def batching_note() -> str:
    defaults = Settings()
    return (
        f"{defaults.infer_batch_max_records} records and waits up to {defaults.infer_batch_timeout_ms} ms to "
        "fill one (`AIMASS_INFER_BATCH_TIMEOUT_MS`)"
    )


async def run(settings: Settings) -> str:
    runs = [await measure(settings, load) for load in Load.from_environment()]
    return "\n".join([summary(runs), *(section(m) for m in runs)])


if __name__ == "__main__":  # one section alone: python -m tests.bench.bench_latency

    async def alone() -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as var:
            # BENCH_LATENCY_VAR keeps the services' logs (under <dir>/latency/log) after the run.
            settings = test_settings(Path(os.environ.get("BENCH_LATENCY_VAR", var)), f"bench-{uuid.uuid4().hex[:6]}.")
            await ensure_topics(settings)
            print(await run(settings))

    asyncio.run(alone())
