"""Where infer's time goes: ``python -m tests.bench.profile_infer [RECORDS] [SITES]`` fills a topic, runs
``aimass run infer`` under py-spy until the batch is committed, and prints the hottest frames (own time, and
time inside each of infer's steps). Needs py-spy (the test extra) and permission to trace a child process."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from shared.broker import ensure_topics
from shared.settings import PROJECT_ROOT
from shared.topics import group_id
from tests.bench.bench_infer import SITES, committed_rate, payloads, preload
from tests.support.models import heart_clean_records, heart_task, write_model
from tests.support.processes import environment, test_settings

STEPS = (
    "accept_batch",
    "rows_by_task",
    "plan_groups",
    "score_misses",
    "get_many",
    "put_many",
    "build_predictions",
    "send_all",
    "getmany",
    "tolerant_batch_parser",
    "_count",
)


def summarize(raw: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        names = {f.split(" (", 1)[0].rsplit(".", 1)[-1] for f in frames}
        for step in names.intersection(STEPS):
            inside[step] += samples
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inside infer's steps (inclusive):"]
    lines += [f"  {100 * n / total:5.1f}%  {step}" for step, n in inside.most_common()]
    return "\n".join(lines)


async def main(records: int, sites: int) -> None:
    with tempfile.TemporaryDirectory() as var:
        settings = test_settings(Path(var), f"profile-{uuid.uuid4().hex[:6]}.")
        settings = settings.model_copy(update={"infer_cache_ttl_seconds": 0})
        await ensure_topics(settings)
        for seed, site in enumerate(SITES[-sites:]):
            write_model(settings, heart_task().name, site, heart_task().feature_names, seed=seed)
        await preload(settings, payloads(heart_clean_records(), records))
        raw = Path(var) / "infer.raw"
        spy = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
            [
                str(PROJECT_ROOT / ".venv/bin/py-spy"),
                "record",
                "--rate",
                "250",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--",
                sys.executable,
                "-m",
                "services.cli",
                "run",
                "infer",
            ],
            cwd=PROJECT_ROOT,
            env=environment(settings, AIMASS_INFER_CACHE_TTL_SECONDS="0"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            group = group_id("infer", settings.topic_prefix)
            done, seconds = await committed_rate(settings, group, records, timeout=600)
            print(f"{done} records in {seconds:.2f} s = {done / seconds:,.0f} records/s (under py-spy)")
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        print(summarize(raw))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
