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
