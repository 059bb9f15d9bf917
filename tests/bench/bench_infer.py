"""infer, Kafka to Kafka on the real broker, against a naive consumer, the pass-through ceiling and Kafka's own
perf tools; and onnxruntime against torch eager per batch size (see tests/bench/infer_loops.py).

Throughput is read from the broker, the same way for every consumer: the input topic is filled first, the
consumer is started, and the rate is the records its group committed per second between its first and its last
commit (start-up excluded). A commit comes only after the batch's outputs were acknowledged (acks=all), so it is
end to end. ``BENCH_INFER_RECORDS`` (default 40,000) sets the size; the naive consumer gets a tenth.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from aiokafka.admin import AIOKafkaAdminClient

from services.infer.adapters.onnx_runtime import OnnxLoader
from services.infer.scoring import ScoringInput, prediction, rows_by_task
from shared.broker import ensure_topics
from shared.errors import parse_event
from shared.schemas.records import CleanRecord
from shared.security import kafka_client_options
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import Topic, cloudevent_headers, group_id, topic_name
from tests.support.kafka import producer
from tests.support.models import heart_clean_records, heart_task, load_torch, write_model
from tests.support.processes import ServiceProcess, environment, free_port

SITES = ("cleveland", "hungary", "va-long-beach", "switzerland", "pooled")
KAFKA_LIBS = PROJECT_ROOT / "var" / "kafka"


@dataclass
class Run:
    name: str
    records: int
    seconds: float
    outputs_per_record: int
    load: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    def row(self, reference: float | None = None) -> str:
        ratio = f"{self.rate / reference:.2f}" if reference else ""
        return (
            f"| {self.name} | {self.records:,} | {self.seconds:.2f} | {self.rate:,.0f} | "
            f"{self.rate * self.outputs_per_record:,.0f} | {ratio} | {self.load:.2f} |"
        )


def payloads(records: list[CleanRecord], total: int) -> list[tuple[bytes, bytes]]:
    """``total`` records cycled from the real ones, each with its own record id: (key, value)."""
    out = []
    for n in range(total):
        record = records[n % len(records)]
        copy = record.model_copy(update={"record_id": f"bench-{n}-{record.record_id}"})
        out.append((record.patient.encode(), copy.model_dump_json().encode()))
    return out


async def preload(settings: Settings, items: list[tuple[bytes, bytes]]) -> None:
    client = await producer(settings)
    topic = topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix)
    try:
        pending = []
        for n, (key, value) in enumerate(items):
            headers = cloudevent_headers(service="clean", type_="org.aimass.record.cleaned.v1", event_id=f"ce-{n}")
            pending.append(
                await client.send(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
            )
        await asyncio.gather(*pending)
    finally:
        await client.stop()


async def committed_rate(settings: Settings, group: str, total: int, timeout: float) -> tuple[int, float]:
    """(records, seconds) between the group's first and last commit; polls the broker every 50 ms."""
    topic = topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix)
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        first: tuple[int, float] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            offsets = await admin.list_consumer_group_offsets(group)
            # Group ids are not per topic prefix: count only this run's topic.
            done = sum(m.offset for tp, m in offsets.items() if tp.topic == topic and m is not None and m.offset > 0)
            now = time.perf_counter()
            if done and first is None:
                first = (done, now)
            if done >= total and first is not None:
                return total - first[0], now - first[1]
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{group} committed fewer than {total} records within {timeout} s")
    finally:
        await admin.close()


def variant_settings(base: Settings, name: str, **update: object) -> Settings:
    return base.model_copy(
        update={
            "topic_prefix": f"{base.topic_prefix}{name}.",
            "var_dir": base.var_dir / name,
            "infer_port": free_port(),
            **update,
        }
    )


def start_consumer(settings: Settings, kind: str, **env: str) -> Callable[[], None]:
    """Starts infer (``aimass run infer``) or one of tests/bench/infer_loops.py; returns how to stop it."""
    if kind == "infer":
        return ServiceProcess("infer", settings).start().stop
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    log = (settings.var_dir / f"{kind}.log").open("ab")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.infer_loops", kind],
        cwd=PROJECT_ROOT,
        env=environment(settings, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        child.terminate()
        child.wait(30)
        log.close()

    return stop


async def run_consumer(
    settings: Settings, name: str, kind: str, group: str, items: list[tuple[bytes, bytes]], outputs: int, **env: str
) -> Run:
    await ensure_topics(settings)
    await preload(settings, items)
    load = os.getloadavg()[0]
    stop = start_consumer(settings, kind, **env)
    try:
        records, seconds = await committed_rate(settings, group, len(items), timeout=600)
    finally:
        stop()
    print(f"bench: {name}: {records} records in {seconds:.2f} s", file=sys.stderr, flush=True)
    return Run(name, records, seconds, outputs, load)


def kafka_tools(settings: Settings, records: int, size: int) -> list[str]:
    """Kafka's ProducerPerformance and ConsumerPerformance on the same message size (kafka-tools from Maven)."""
    tools = KAFKA_LIBS / "tools"
    if not any(tools.glob("kafka-tools-*.jar")):
        return [
            "Kafka's perf tools were not run: `mvn dependency:copy -Dartifact=org.apache.kafka:kafka-tools:4.1.1 "
            "-DoutputDirectory=var/kafka/tools` fetches them (docs/infer.md)."
        ]
    topic = f"{settings.topic_prefix}perf-{uuid.uuid4().hex[:6]}"
    classpath = f"{KAFKA_LIBS / 'libs'}/*:{tools}/*"
    java = ["java", "-Xmx512m", "-cp", classpath]
    produced = (
        subprocess.run(
            [
                *java,
                "org.apache.kafka.tools.ProducerPerformance",
                "--topic",
                topic,
                "--num-records",
                str(records),
                "--record-size",
                str(size),
                "--throughput",
                "-1",
                "--producer-props",
                f"bootstrap.servers={settings.kafka_bootstrap}",
                "acks=all",
                "enable.idempotence=true",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    consumed = (
        subprocess.run(
            [
                *java,
                "org.apache.kafka.tools.ConsumerPerformance",
                "--topic",
                topic,
                "--messages",
                str(records),
                "--bootstrap-server",
                settings.kafka_bootstrap,
                "--group",
                f"perf-{uuid.uuid4().hex[:6]}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        .stdout.strip()
        .splitlines()
    )
    header, values = consumed[-2].split(","), consumed[-1].split(",")
    stats = dict(zip([h.strip() for h in header], [v.strip() for v in values], strict=False))
    return [
        f"- ProducerPerformance ({records:,} × {size} B, acks=all, idempotent): {produced}",
        f"- ConsumerPerformance: {float(stats['nMsg.sec']):,.0f} records/s, {float(stats['MB.sec']):.1f} MB/s",
    ]


def ort_vs_torch(settings: Settings) -> list[str]:
    features = heart_task().feature_names
    card, _ = write_model(settings, heart_task().name, "bench-eager", features)
    session, eager = OnnxLoader(settings).load(card), load_torch(settings, card)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    lines = [
        "| batch | onnxruntime µs/call | torch eager µs/call | onnxruntime rows/s | speed-up |",
        "|---:|---:|---:|---:|---:|",
    ]
    for batch in (1, 64, 256):
        x = rng.normal(100, 30, size=(batch, len(features))).astype(np.float32)
        x[rng.random(x.shape) < 0.1] = np.nan
        ort_us = best_microseconds(lambda x=x: session.score(x))
        with torch.no_grad():
            tensor = torch.from_numpy(x)
            torch_us = best_microseconds(lambda tensor=tensor: eager(tensor))
        lines.append(
            f"| {batch} | {ort_us:.1f} | {torch_us:.1f} | {batch / ort_us * 1e6:,.0f} | {torch_us / ort_us:.1f}× |"
        )
    return lines


def best_microseconds(call, repeats: int = 5, number: int = 300) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - started) / number)
    return best * 1e6


async def run(settings: Settings) -> str:
    total = int(os.environ.get("BENCH_INFER_RECORDS", "40000"))
    real = heart_clean_records()
    items = payloads(real, total)
    record_bytes = int(np.mean([len(v) for _, v in items[:920]]))
    sample = rows_by_task([(0, "ce", parse_event(items[0][1], ScoringInput, "t"))])[heart_task().name].records[0]
    card, _ = write_model(settings, heart_task().name, "size-probe", heart_task().feature_names)
    made = prediction(sample, heart_task().name, card, card.ref, 0.5, False, 0.1)
    output_bytes = len(made.model_dump_json())

    runs: list[Run] = []
    for name, sites, ttl in (
        ("infer, 5 models, cache off", SITES, 0),
        ("infer, 5 models, cache on", SITES, 3600),
        ("infer, 1 model, cache off", ("pooled",), 0),
    ):
        variant = variant_settings(settings, f"infer{len(runs)}", infer_cache_ttl_seconds=ttl)
        for seed, site in enumerate(sites):
            write_model(variant, heart_task().name, site, heart_task().feature_names, seed=seed)
        runs.append(
            await run_consumer(variant, name, "infer", group_id("infer", variant.topic_prefix), items, len(sites))
        )
    for outputs in (5, 1):
        variant = variant_settings(settings, f"pass{outputs}")
        runs.append(
            await run_consumer(
                variant,
                f"pass-through, {outputs} outputs/record",
                "passthrough",
                "aimass-bench-passthrough",
                items,
                outputs,
                BENCH_OUTPUTS_PER_RECORD=str(outputs),
                BENCH_OUTPUT_BYTES=str(output_bytes),
            )
        )
    naive_settings = variant_settings(settings, "naive")
    for seed, site in enumerate(SITES):
        write_model(naive_settings, heart_task().name, site, heart_task().feature_names, seed=seed)
    runs.append(
        await run_consumer(
            naive_settings,
            "naive per-record consumer, 5 torch models",
            "naive",
            "aimass-bench-naive",
            items[: max(1000, total // 10)],
            5,
        )
    )
    by_name = {r.name: r for r in runs}
    naive = runs[-1].rate
    ceiling5, ceiling1 = by_name["pass-through, 5 outputs/record"], by_name["pass-through, 1 outputs/record"]

    lines = [
        "### infer: Kafka → Kafka (records.clean → predictions)",
        "",
        f"Real UCI heart-disease records ({len(real)} cycled, unique record ids), {record_bytes:,} B each; one "
        f"prediction is {output_bytes} B. Batches of up to {settings.infer_batch_max_records} records, onnxruntime "
        f"on CPU ({settings.infer_intra_op_threads} intra-op thread). No GPU on this machine. Load = 1-minute load "
        "average when the run started (the machine is shared).",
        "",
        "| consumer | records | s | records/s | predictions/s | vs naive | load |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[r.row(naive if not r.name.startswith("naive") else None) for r in runs],
        "",
        "| ratio | value | target |",
        "|---|---:|---:|",
        f"| infer 5 models (cache off) / naive | {by_name['infer, 5 models, cache off'].rate / naive:.1f}× | ≥ 20× |",
        f"| infer 5 models (cache off) / pass-through 5 outputs | "
        f"{by_name['infer, 5 models, cache off'].rate / ceiling5.rate:.0%} | ≥ 50 % |",
        f"| infer 5 models (cache on) / pass-through 5 outputs | "
        f"{by_name['infer, 5 models, cache on'].rate / ceiling5.rate:.0%} | ≥ 50 % |",
        f"| infer 1 model / pass-through 1 output | "
        f"{by_name['infer, 1 model, cache off'].rate / ceiling1.rate:.0%} | ≥ 50 % |",
        "",
        "Kafka's own clients on the same broker and record size:",
        "",
        *kafka_tools(settings, total, record_bytes),
        "",
        "onnxruntime vs torch eager, one heart-disease model (22 features, 10 % missing), one thread, best of 5:",
        "",
        *ort_vs_torch(settings),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # one section alone: python -m tests.bench.bench_infer
    from tests.support.processes import test_settings

    async def alone() -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as var:
            settings = test_settings(Path(var), f"bench-{uuid.uuid4().hex[:6]}.")
            await ensure_topics(settings)
            print(await run(settings))

    asyncio.run(alone())
