"""Counting fuzz inputs and crashes. A crash is any exception other than ``RejectedInput`` (which the service turns
into a dead letter), a failed check on what a parser returned, an input that takes longer than the time bound, or
one during which the process's peak memory grew by more than the memory bound.

Bounds and the size of the run come from the environment, so the same tests are the fast variant in ``make test``
and the full run:

- ``AIMASS_FUZZ_INPUTS``: inputs in total over all targets (default 3,000; the full run is 100,000).
- ``AIMASS_FUZZ_SECONDS``: CPU-time bound per input (default 10 s; the full run uses 5). CPU time, not wall time,
  so that a busy shared machine does not make a fast parser look slow.
- ``AIMASS_FUZZ_MEMORY_MB``: memory bound per input (default 256 MiB of peak-RSS growth).
- ``AIMASS_FUZZ_REPORT``: a JSON file to write the counts to (the full run writes one; docs/reliability-fuzz.md).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.errors import RejectedInput

TOTAL_INPUTS = int(os.environ.get("AIMASS_FUZZ_INPUTS", "3000"))
SECONDS_PER_INPUT = float(os.environ.get("AIMASS_FUZZ_SECONDS", "10"))
MEMORY_MB_PER_INPUT = int(os.environ.get("AIMASS_FUZZ_MEMORY_MB", "256"))
REPORT_EVERY = 5_000  # inputs between two writes of the report, so a long run shows its progress


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class Crash:
    target: str
    kind: str  # exception type, "slow" or "memory"
    where: str  # the innermost frame, or the measured figure
    sample: str  # the first bytes of the input, for a person to read
    input_base64: str = ""  # the whole input (up to 4 MiB), to reproduce it


@dataclass
class TargetCount:
    inputs: int = 0
    rejected: int = 0
    accepted: int = 0
    cpu_seconds: float = 0.0
    slowest_cpu_seconds: float = 0.0


@dataclass
class FuzzRun:
    """What every target saw; one per test session."""

    targets: dict[str, TargetCount] = field(default_factory=dict)
    crashes: list[Crash] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    report: Path | None = None

    @property
    def inputs(self) -> int:
        return sum(t.inputs for t in self.targets.values())

    def feed(self, target: str, sample: bytes, call: Callable[[], None]) -> None:
        """Runs ``call`` on one input: counts it and records it as a crash if it escapes or breaks a bound."""
        count = self.targets.setdefault(target, TargetCount())
        count.inputs += 1
        rss_before, started = _peak_rss_mb(), time.process_time()
        try:
            call()
            count.accepted += 1
        except RejectedInput:
            count.rejected += 1
        except Exception as error:
            frame = traceback.extract_tb(error.__traceback__)[-1]
            self._crash(target, type(error).__name__, f"{frame.filename}:{frame.lineno} {str(error)[:200]}", sample)
        seconds = time.process_time() - started
        count.cpu_seconds += seconds
        count.slowest_cpu_seconds = max(count.slowest_cpu_seconds, seconds)
        if seconds > SECONDS_PER_INPUT:
            self._crash(target, "slow", f"{seconds:.1f} s of CPU > {SECONDS_PER_INPUT} s", sample)
        grown = _peak_rss_mb() - rss_before
        if grown > MEMORY_MB_PER_INPUT:
            self._crash(target, "memory", f"peak RSS +{grown:.0f} MiB > {MEMORY_MB_PER_INPUT} MiB", sample)
        if self.report is not None and self.inputs % REPORT_EVERY == 0:
            self.write(self.report)

    def _crash(self, target: str, kind: str, where: str, sample: bytes) -> None:
        self.crashes.append(
            Crash(target, kind, where, repr(sample[:300]), base64.b64encode(sample[: 4 << 20]).decode())
        )

    def crashes_of(self, target: str) -> list[Crash]:
        return [c for c in self.crashes if c.target == target]

    def summary(self) -> dict[str, object]:
        return {
            "inputs": self.inputs,
            "crashes": len(self.crashes),
            "seconds": round(time.time() - self.started, 1),
            "bounds": {"cpu_seconds_per_input": SECONDS_PER_INPUT, "memory_mb_per_input": MEMORY_MB_PER_INPUT},
            "peak_rss_mb": round(_peak_rss_mb()),
            "targets": {name: asdict(count) for name, count in sorted(self.targets.items())},
            "crash_list": [asdict(c) for c in self.crashes[:50]],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.summary(), indent=2) + "\n")
