"""Runs the benchmarks and writes docs/benchmarks.md (see tests/bench/__init__.py)."""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import platform
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from shared.broker import ensure_topics
from shared.settings import PROJECT_ROOT
from tests.support.processes import test_settings

DOC = PROJECT_ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


async def main(selected: list[str]) -> None:
    import tempfile

    names = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")]
    names = [n for n in names if not selected or n.removeprefix("bench_") in selected]
    sections = []
    with tempfile.TemporaryDirectory() as var:
        settings = test_settings(Path(var), f"bench-{uuid.uuid4().hex[:6]}.")
        await ensure_topics(settings)
        for name in sorted(names):
            print(f"bench: {name} …", file=sys.stderr, flush=True)
            module = importlib.import_module(f"tests.bench.{name}")
            sections.append(await module.run(settings))
    header = [
        "# Benchmarks",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Command: `make bench` (`python -m tests.bench {' '.join(selected)}`".rstrip() + ")",
        "- Kafka 4.1 single-node KRaft and Redis on the same machine; every figure comes from this run.",
        "",
    ]
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(header + sections) + "\n")
    print(f"bench: wrote {DOC.relative_to(PROJECT_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
