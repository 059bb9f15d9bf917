"""CUDA-provider parity with CPU, and throughput of both, for a machine with an NVIDIA GPU and the ``gpu`` extra
(``onnxruntime-gpu``): ``python -m tests.bench.gpu_check``. Prints a Markdown section for docs/benchmarks.md; on a
machine without CUDA it says so and exits 2. Not run in this repository's CI (no GPU there)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from services.infer.adapters.onnx_runtime import CPU, CUDA, OnnxLoader
from shared.settings import Settings
from tests.support.models import heart_task, write_model

BATCHES = (1, 64, 256, 4096, 65536)


def rows_per_second(scorer, x: np.ndarray, seconds: float = 1.0) -> float:
    scorer.score(x)  # warm-up: CUDA allocates and tunes on the first call
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        scorer.score(x)
        calls += 1
    return calls * len(x) / (time.perf_counter() - started)


def main() -> int:
    if CUDA not in ort.get_available_providers():
        print(f"no CUDA provider in onnxruntime {ort.__version__} ({ort.get_available_providers()})")
        return 2
    with tempfile.TemporaryDirectory() as var:
        settings = Settings(var_dir=Path(var))
        card, _ = write_model(settings, heart_task().name, "gpu-check", heart_task().feature_names)
        cpu = OnnxLoader(settings.model_copy(update={"infer_device": "cpu"})).load(card)
        cuda = OnnxLoader(settings.model_copy(update={"infer_device": "cuda"})).load(card)
        assert cuda.provider == CUDA and cpu.provider == CPU, (cuda.provider, cpu.provider)
        rng = np.random.default_rng(0)
        lines = [
            "### infer on GPU: CUDA vs CPU provider",
            "",
            f"onnxruntime {ort.__version__}, one heart-disease model (22 features, 10 % missing).",
            "",
            "| batch | max abs difference | CPU rows/s | CUDA rows/s |",
            "|---:|---:|---:|---:|",
        ]
        for batch in BATCHES:
            x = rng.normal(100, 30, size=(batch, len(card.features))).astype(np.float32)
            x[rng.random(x.shape) < 0.1] = np.nan
            difference = float(np.max(np.abs(cpu.score(x).probabilities - cuda.score(x).probabilities)))
            lines.append(
                f"| {batch} | {difference:.2e} | {rows_per_second(cpu, x):,.0f} | {rows_per_second(cuda, x):,.0f} |"
            )
            assert difference < 1e-5, f"CUDA and CPU disagree by {difference} at batch {batch}"
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
