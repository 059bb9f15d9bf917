"""Runs the benchmarks and writes docs/benchmarks.md (see tests/bench/__init__.py)."""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import platform
import re
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


HEADING = re.compile(r"^#{2,3} ", re.MULTILINE)
STAMP = "_Measured "


def _sections(text: str) -> dict[str, str]:
    """The document's sections (``##``/``###`` headings: one per bench module) by heading, in order."""
    starts = [m.start() for m in HEADING.finditer(text)]
    parts = [text[a:b].rstrip() + "\n" for a, b in zip(starts, [*starts[1:], len(text)][: len(starts)], strict=True)]
    return {part.split("\n", 1)[0].lstrip("# "): part for part in parts}


def _old_stamp(text: str) -> str:
    """What a document written before sections carried their own stamp said of all of them."""
    fields = dict(re.findall(r"^- (Date|Machine|Command): (.*)$", text, re.MULTILINE))
    date, machine = fields.get("Date", "at an unrecorded date"), fields.get("Machine", "this machine")
    return f"{STAMP}{date} on {machine} with `make bench`._"


def merged(previous: str, measured: list[str]) -> list[str]:
    """A partial run (``make bench BENCH=predict``) replaces its own sections and keeps every other one with the
    date, machine and command it was measured with."""
    sections = _sections(previous)
    for title, section in sections.items():
        if STAMP not in section:
            heading, _, body = section.partition("\n")
            sections[title] = f"{heading}\n\n{_old_stamp(previous)}\n{body}"
    sections.update(_sections("\n".join(measured)))
    return list(sections.values())


async def main(selected: list[str]) -> None:
    import tempfile

    names = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")]
    names = [n for n in names if not selected or n.removeprefix("bench_") in selected]
    command = f"`make bench{f' BENCH={chr(32).join(selected)}' if selected else ''}`"
    stamp = f"{STAMP}{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()} with {command}._"
    sections = []
    with tempfile.TemporaryDirectory() as var:
        settings = test_settings(Path(var), f"bench-{uuid.uuid4().hex[:6]}.")
        await ensure_topics(settings)
        for name in sorted(names):
            print(f"bench: {name} …", file=sys.stderr, flush=True)
            module = importlib.import_module(f"tests.bench.{name}")
            heading, _, body = (await module.run(settings)).partition("\n")
            sections.append(f"{heading}\n\n{stamp}\n{body}")
    if selected and DOC.exists():
        sections = merged(DOC.read_text(), sections)
    header = [
        "# Benchmarks",
        "",
        "Each section says when, on which machine and with which command it was measured (`make bench` measures",
        "them all; `make bench BENCH=<name>` one, keeping the others). Kafka 4.1 single-node KRaft and Redis run on",
        "the same machine.",
        "",
    ]
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(header + sections) + "\n")
    print(f"bench: wrote {DOC.relative_to(PROJECT_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
