"""Synchronous prediction: ``POST /predict/heart_disease`` on ingest, as an EHR would call it, one request at a time.

Each request is a FHIR Bundle of a real Cleveland patient (the demo's own format, ``services/cli/scenario/formats.py``),
read by ingest, cleaned by clean, scored by the five ONNX heart-disease models of ``tests/support/factories/report.py``
(four hospitals and pooled) in infer, and fused by fuse: four services as processes on this machine, each step over
loopback HTTP with the caller's token. Latency is the client's (aiohttp, one connection kept), request sent to
answer read; 20 warm-up requests are
not counted; ``BENCH_PREDICT_REQUESTS`` (default 500) sets how many are.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp

from services.cli.scenario import formats
from services.cli.scenario.heart import records_by_hospital
from services.cli.scenario.observed import percentile
from shared.auth import SCOPE_PREDICT
from shared.settings import Settings
from tests.support.factories.report import install_models
from tests.support.identity import local_identity
from tests.support.processes import start_all, test_settings

SITES = ("cleveland", "hungary", "va-long-beach", "switzerland", "pooled")
WARM_UP = 20
STEPS = {
    "read": "ingest reads the Bundle (fhir.resources), pseudonymizes",
    "clean": "clean over HTTP",
    "infer": "infer over HTTP (5 models)",
    "fuse": "fuse over HTTP",
    "audit": "waiting for the audit event's ack",
}


def bundles() -> list[bytes]:
    return [json.dumps(formats.fhir_bundle(d)).encode() for d in records_by_hospital()["cleveland"]]


async def measure(settings: Settings, requests: int) -> tuple[list[float], list[float], dict[str, list[float]], int]:
    install_models(settings.data_path / "models", SITES)
    processes = start_all(["ingest", "clean", "infer", "fuse"], settings)
    try:
        headers = {**local_identity().headers("cleveland", SCOPE_PREDICT), "content-type": "application/fhir+json"}
        documents = bundles()
        url = f"{processes['ingest'].url}/predict/heart_disease"
        client_ms, server_ms, steps_ms, answered = [], [], defaultdict(list), 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            for n in range(WARM_UP + requests):
                started = time.perf_counter()
                async with client.post(url, data=documents[n % len(documents)], headers=headers) as answer:
                    answer.raise_for_status()
                    body = await answer.json()
                elapsed = (time.perf_counter() - started) * 1000
                if n >= WARM_UP:
                    client_ms.append(elapsed)
                    server_ms.append(body["elapsed_ms"])
                    for step, ms in body["steps_ms"].items():
                        steps_ms[step].append(ms)
                    answered = len(body["results"][0]["answered"])
        return client_ms, server_ms, steps_ms, answered
    finally:
        for process in processes.values():
            process.stop()


async def run(settings: Settings) -> str:
    requests = int(os.environ.get("BENCH_PREDICT_REQUESTS", "500"))
    client_ms, server_ms, steps_ms, answered = await measure(settings, requests)
    load = os.getloadavg()[0]

    def row(name: str, values: list[float]) -> str:
        quantiles = (percentile(values, q) for q in (50, 95, 99))
        return f"| {name} | " + " | ".join(f"{v:.1f}" for v in quantiles) + f" | {max(values):.1f} |"

    return "\n".join(
        [
            "### Synchronous prediction: POST /predict/heart_disease",
            "",
            f"{requests:,} requests one at a time (after {WARM_UP} warm-up), each a real Cleveland patient's FHIR "
            f"Bundle: read by ingest, cleaned by clean, scored by {answered} ONNX models in infer and fused by fuse "
            f"(four processes, loopback HTTP, token checked at each step; the client is aiohttp, whose "
            f"loopback round trip is ~0.3 ms, httpx's async client's ~2.3 ms). Load at the start: {load:.2f}. "
            f"{1000 * requests / sum(client_ms):,.0f} requests/s. Target: p99 ≤ 20 ms.",
            "",
            "| latency, ms | p50 | p95 | p99 | max |",
            "|---|---:|---:|---:|---:|",
            row("client: request to answer", client_ms),
            row("ingest: read to fused (its elapsed_ms)", server_ms),
            *(row(f"step: {STEPS[step]}", values) for step, values in steps_ms.items()),
            f"| mean, client | {statistics.fmean(client_ms):.1f} | | | |",
            "",
        ]
    )


async def _main() -> None:
    with tempfile.TemporaryDirectory() as var:
        print(await run(test_settings(Path(var), "bench-predict-")))


if __name__ == "__main__":
    asyncio.run(_main())
    sys.exit(0)
