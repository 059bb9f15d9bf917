"""report alone, Kafka to Kafka on the real broker: fused results in, reports out, in reports per second.

``predictions.fused`` is filled first with fused results of the real UCI heart-disease records (scored by small
ONNX models trained on them, ``tests/support/factories/report.py``; each copy with its own record id, so each is its own
report), then report is started as a process with those models in its registry. The rate is read from the broker:
the reports published between the first and the last report on ``reports`` (Kafka timestamps), start-up excluded.
A report is on the topic only after its files are on disk. ``BENCH_REPORT_RESULTS`` (default 2,000) sets the size.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from shared.broker import ensure_topics
from shared.schemas.predictions import FusedPrediction
from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import CE_ID, Topic, cloudevent_headers, decode_headers, event_type, topic_name
from tests.support.factories.report import fused_for, heart_records, install_models
from tests.support.kafka import producer
from tests.support.processes import ServiceProcess

SITES = ("cleveland", "hungary", "va-long-beach", "pooled")


@dataclass(frozen=True)
class ReportRun:
    reports: int
    steady_seconds: float  # first report to last report, broker timestamps
    wall_seconds: float  # service started to last report, start-up included
    load: float

    @property
    def rate(self) -> float:
        return (self.reports - 1) / self.steady_seconds if self.steady_seconds > 0 else float("nan")


def fused_results(total: int) -> list[FusedPrediction]:
    """``total`` fused results cycled from the real records, each with its own record id."""
    real = [fused_for(r, SITES) for r in heart_records()]
    return [
        real[n % len(real)].model_copy(update={"record_id": f"bench-{n}-{real[n % len(real)].record_id}"})
        for n in range(total)
    ]


async def preload(settings: Settings, results: list[FusedPrediction]) -> None:
    client = await producer(settings)
    topic = topic_name(Topic.PREDICTIONS_FUSED, settings.topic_prefix)
    try:
        pending = []
        for n, fused in enumerate(results):
            headers = cloudevent_headers(service="fuse", type_=event_type("prediction", "fused"), event_id=f"f-{n}")
            pending.append(
                await client.send(
                    topic,
                    fused.model_dump_json().encode(),
                    key=fused.patient.encode(),
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            )
        await asyncio.gather(*pending)
    finally:
        await client.stop()


async def wait_for_reports(settings: Settings, total: int, timeout: float) -> tuple[int, int, int]:
    """(distinct reports, first and last broker timestamp in ms) once ``total`` distinct reports are out."""
    consumer = AIOKafkaConsumer(
        topic_name(Topic.REPORTS, settings.topic_prefix),
        **kafka_client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: set[str] = set()
    first = last = 0
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(seen)} of {total} reports within {timeout} s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    seen.add(decode_headers(record.headers).get(CE_ID, ""))
                    first = min(first or record.timestamp, record.timestamp)
                    last = max(last, record.timestamp)
    finally:
        await consumer.stop()
    return len(seen), first, last


async def measure(settings: Settings, results: list[FusedPrediction]) -> ReportRun:
    install_models(settings.data_path / "models", SITES)
    await ensure_topics(settings)
    await preload(settings, results)
    load = os.getloadavg()[0]
    started = time.time()
    process = ServiceProcess("report", settings).start()
    try:
        reports, first, last = await wait_for_reports(settings, len(results), timeout=3600)
    finally:
        process.stop()
    return ReportRun(reports, (last - first) / 1000, last / 1000 - started, load)


async def run(settings: Settings) -> str:
    total = int(os.environ.get("BENCH_REPORT_RESULTS", "2000"))
    outcome = await measure(settings, fused_results(total))
    print(f"bench: report: {outcome.reports} reports, {outcome.rate:.1f}/s", file=sys.stderr, flush=True)
    lines = [
        "### report: Kafka → Kafka (predictions.fused → reports)",
        "",
        f"{total:,} fused results of the real UCI heart-disease records (920 cycled, unique record ids), four ONNX "
        "models in the registry (three hospitals and pooled), preloaded; report started alone. Per report: "
        "occlusion attribution, HTML, FHIR bundle (validated), files on disk, the message acknowledged; the PDF is "
        "rendered on the first request for it. Load = 1-minute load average when the run started.",
        "",
        "| reports | first → last report, s | reports/s | start → last report, s | load |",
        "|---:|---:|---:|---:|---:|",
        f"| {outcome.reports:,} | {outcome.steady_seconds:.1f} | {outcome.rate:,.1f} | {outcome.wall_seconds:.1f} "
        f"| {outcome.load:.2f} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # one section alone: python -m tests.bench.bench_report
    from tests.support.processes import test_settings

    async def alone() -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as var:
            settings = test_settings(Path(var), f"bench-{uuid.uuid4().hex[:6]}.")
            print(await run(settings))

    asyncio.run(alone())
