"""onnxruntime sessions for registry models (ONNX convention in ``shared/registry.py``), on CUDA when present.

Session options, and why:
- ``graph_optimization_level = ORT_ENABLE_ALL``: constant folding and fusions (Gemm+Relu, ...) once at load.
- ``intra_op_num_threads`` = ``AIMASS_INFER_INTRA_OP_THREADS`` (default 1): the models are small MLPs; a 2,000-row
  batch takes well under a millisecond on one core, and more threads only add synchronization and compete with
  the Kafka client for the machine's cores. ``inter_op_num_threads = 1`` and sequential execution for the same
  reason (the graph is a chain).
- The CPU memory arena and memory-pattern planning stay on: batches of similar size reuse their buffers.
On CUDA the CPU provider stays listed as fallback for any node CUDA lacks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import onnxruntime as ort

from shared.errors import RejectedInput
from shared.registry import INPUT_NAME, MODEL_FILE, OUTPUT_NAME, model_dir
from shared.schemas.models import ModelCard
from shared.settings import Settings

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """CUDA first when it is available and not turned off, CPU always last (fallback)."""
    if device != "cpu" and CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise RuntimeError("AIMASS_INFER_DEVICE=cuda but onnxruntime has no CUDA provider (install the 'gpu' extra)")
    return [CPU]


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings from the optimizer about unused initializers are noise here
    return options


def artifact_path(settings: Settings, card: ModelCard) -> Path:
    """The card's ``file://`` artifact, else the model's place in this registry."""
    parsed = urlparse(card.artifact_uri)
    if parsed.scheme == "file" and Path(unquote(parsed.path)).exists():
        return Path(unquote(parsed.path))
    return model_dir(settings, card.task, card.site, card.version) / MODEL_FILE


@dataclass(frozen=True, slots=True)
class Scoring:
    probabilities: np.ndarray
    seconds: float


class OnnxScorer:
    """One model's session. ``score`` is thread-safe (onnxruntime sessions are) and releases the GIL."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.provider = session.get_providers()[0]

    def score(self, features: np.ndarray) -> Scoring:
        started = time.perf_counter()
        [probability] = self.session.run([OUTPUT_NAME], {INPUT_NAME: features})
        return Scoring(np.asarray(probability, dtype=np.float64).reshape(-1), time.perf_counter() - started)


class OnnxLoader:
    def __init__(self, settings: Settings, available: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.providers = choose_providers(
            settings.infer_device, ort.get_available_providers() if available is None else available
        )
        self.options = session_options(settings.infer_intra_op_threads)

    def load(self, card: ModelCard) -> OnnxScorer:
        """The card's model, checked against its sha256; ``RejectedInput`` when the artifact cannot serve."""
        path = artifact_path(self.settings, card)
        name = f"{card.task}/{card.site}/{card.version}"
        try:
            data = path.read_bytes()
        except OSError:
            raise RejectedInput(f"model {name}: artifact not readable at {path}", "model_artifact") from None
        if hashlib.sha256(data).hexdigest() != card.artifact_sha256:
            raise RejectedInput(f"model {name}: artifact sha256 differs from the card", "model_artifact")
        try:
            session = ort.InferenceSession(data, sess_options=self.options, providers=self.providers)
        except Exception as error:  # onnxruntime raises its own exception types for a bad graph
            raise RejectedInput(
                f"model {name}: onnxruntime cannot load it ({type(error).__name__})", "model_artifact"
            ) from None
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise RejectedInput(
                f"model {name}: needs input '{INPUT_NAME}' and output '{OUTPUT_NAME}'", "model_artifact"
            )
        return OnnxScorer(session)
