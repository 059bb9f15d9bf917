"""ONNX export of the scorer (preprocessing inside the graph) and the parity check that gates every release."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime as ort
import torch

from services.train.failures import ParityError
from services.train.network import Scorer
from shared.registry import INPUT_NAME, OUTPUT_NAME

OPSET = 17
PARITY_TOLERANCE = 1e-5


def export_onnx(scorer: Scorer, n_features: int) -> bytes:
    scorer.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript; this small graph
        # (IsNaN, Where, Gemm, Relu, Sigmoid) exports identically with either.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            scorer,
            (torch.zeros(2, n_features),),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def onnx_probabilities(model: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    [probability] = session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(x, dtype=np.float32)})
    return np.asarray(probability, dtype=np.float64)


def parity_difference(scorer: Scorer, model: bytes, x: np.ndarray) -> float:
    """Max |torch - onnxruntime| over ``x`` (the test split, missing values included)."""
    if len(x) == 0:
        return 0.0
    return float(np.max(np.abs(scorer.predict(x) - onnx_probabilities(model, x))))


def check_parity(scorer: Scorer, model: bytes, x: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> float:
    difference = parity_difference(scorer, model, x)
    if not difference <= tolerance:
        raise ParityError(f"ONNX and torch disagree by {difference:.3g} on the test split (tolerance {tolerance})")
    return difference
