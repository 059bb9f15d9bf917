from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from services.infer.adapters.onnx_runtime import CPU, CUDA, OnnxLoader, choose_providers
from shared.errors import RejectedInput
from shared.registry import MODEL_FILE, model_dir
from tests.support.factories.infer import FEATURES
from tests.support.models import write_model


def test_cuda_is_chosen_when_onnxruntime_offers_it_with_cpu_as_fallback() -> None:
    assert choose_providers("auto", ["TensorrtExecutionProvider", CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("auto", ["AzureExecutionProvider", CPU]) == [CPU]
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    with pytest.raises(RuntimeError, match="gpu"):
        choose_providers("cuda", [CPU])


def test_the_loader_asks_onnxruntime_for_cuda_when_the_provider_list_has_it(settings, monkeypatch) -> None:
    card, _ = write_model(settings, "heart", "pooled", FEATURES)
    asked: list[list[str]] = []
    real = ort.InferenceSession

    def fake_session(model, sess_options=None, providers=None):
        asked.append(list(providers))
        return real(model, sess_options=sess_options, providers=[CPU])  # this machine has no GPU

    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    loader = OnnxLoader(settings, available=[CUDA, CPU])
    loader.load(card)
    assert loader.providers[0] == CUDA and asked == [[CUDA, CPU]]


def test_onnxruntime_agrees_with_torch_missing_values_included(settings) -> None:
    card, scorer = write_model(settings, "heart", "pooled", FEATURES, seed=3)
    x = np.array([[63.0, np.nan, 150.0], [41.0, 204.0, np.nan], [np.nan] * 3], dtype=np.float32)
    scoring = OnnxLoader(settings).load(card).score(x)
    with torch.no_grad():
        expected = scorer(torch.from_numpy(x)).numpy()
    assert np.allclose(scoring.probabilities, expected, atol=1e-6)
    assert scoring.seconds > 0


def test_an_artifact_that_differs_from_its_card_is_rejected(settings) -> None:
    card, _ = write_model(settings, "heart", "pooled", FEATURES)
    (model_dir(settings, "heart", "pooled", card.version) / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(RejectedInput, match="sha256"):
        OnnxLoader(settings).load(card)
    missing = card.model_copy(update={"version": "gone", "artifact_uri": "file:///nowhere/model.onnx"})
    with pytest.raises(RejectedInput, match="not readable"):
        OnnxLoader(settings).load(missing)
