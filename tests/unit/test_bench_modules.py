"""`make bench` loads every ``tests/bench/bench_*`` module and awaits its ``run``; the other modules are the tools
they start (infer_loops, profile_infer, gpu_check). No test runs the benchmarks themselves (they need minutes and a
quiet machine), so this is what catches a refactor that breaks one: each module imports, each bench has ``run``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import tests.bench

MODULES = sorted(m.name for m in pkgutil.iter_modules([str(Path(tests.bench.__file__).parent)]))


def test_the_runner_finds_the_benchmarks_of_every_service() -> None:
    benches = {name.removeprefix("bench_") for name in MODULES if name.startswith("bench_")}
    assert {"ingest", "clean", "infer", "report", "latency"} <= benches


@pytest.mark.parametrize("name", MODULES)
def test_every_bench_module_imports_and_every_benchmark_has_run(name: str) -> None:
    module = importlib.import_module(f"tests.bench.{name}")
    if name.startswith("bench_"):
        assert inspect.iscoroutinefunction(module.run), f"tests/bench/{name}.py has no async run(settings)"


def test_a_partial_run_replaces_its_own_sections_and_keeps_the_others_with_their_date() -> None:
    from tests.bench.__main__ import merged

    before = (
        "# Benchmarks\n\n- Date: 2026-11-29 12:59 UTC\n- Machine: 2 cores\n\n"
        "## clean: records\n\nold clean\n\n### infer: Kafka\n\nold infer\n"
    )
    measured = ["### infer: Kafka\n\n_Measured 2026-12-02 21:00 UTC on 2 cores with `make bench BENCH=infer`._\nnew"]
    sections = merged(before, measured)
    assert [s.split("\n")[0] for s in sections] == ["## clean: records", "### infer: Kafka"]
    assert "_Measured 2026-11-29 12:59 UTC on 2 cores with `make bench`._" in sections[0] and "old clean" in sections[0]
    assert "new" in sections[1] and "old infer" not in sections[1]
    assert merged("".join(sections), [])[0] == sections[0]  # a stamped section is kept as it is
