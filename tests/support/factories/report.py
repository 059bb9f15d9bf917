"""Real inputs for report's tests: UCI heart-disease records, small ONNX models trained on them following the
registry's convention (imputation inside the graph, NaN for missing), and the fused results fuse would emit.

Cheap enough for unit tests (a few seconds, cached per process); the integration test reuses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.metrics import roc_auc_score

from services.cli.scenario.heart import records_by_hospital
from services.ingest.documents import envelope_of, read_document
from services.ingest.pseudonym import Pseudonymizer
from shared.registry import CARD_FILE, INPUT_NAME, MODEL_FILE, OUTPUT_NAME
from shared.schemas.models import ModelCard, ModelRef
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.schemas.records import CanonicalRecord, QualityFlag
from shared.tasks import TaskSpec, feature_vector, label_of, load_tasks

TASK = "heart_disease"
VERSION = "20260105T080000000Z"
WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def heart_task() -> TaskSpec:
    return load_tasks()[TASK]


@dataclass(frozen=True)
class HeartRecord:
    record: CanonicalRecord
    features: list[float | None]
    label: float | None
    raw: dict[str, object]


@lru_cache(maxsize=1)
def heart_records() -> tuple[HeartRecord, ...]:
    """The 920 UCI rows as ingest turns them into canonical records, with the task's feature vectors."""
    task = heart_task()
    pseudonymize = Pseudonymizer(b"report-unit-test-key-0123456789")
    out = []
    for hospital, documents in records_by_hospital().items():
        for index, document in enumerate(documents):
            headers = {"ce_source": hospital, "content-type": "application/json", "ce_id": f"{hospital}-{index}"}
            [record] = read_document(
                json.dumps(document).encode(), headers, envelope_of(headers, "x", WHEN), pseudonymize, 10**6
            )
            out.append(HeartRecord(record, feature_vector(record, task), label_of(record, task), document))
    return tuple(out)


class _Scorer(torch.nn.Module):
    """Median imputation and scaling inside the graph, as the registry's ONNX convention asks."""

    def __init__(self, median: np.ndarray, mean: np.ndarray, scale: np.ndarray, width: int = 16) -> None:
        super().__init__()
        self.register_buffer("median", torch.tensor(median, dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        n = len(median)
        self.net = torch.nn.Sequential(torch.nn.Linear(n, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.median, x)
        return torch.sigmoid(self.net((x - self.mean) / self.scale)).squeeze(-1)


def _matrix(rows: list[HeartRecord]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[np.nan if v is None else v for v in r.features] for r in rows], dtype=np.float32)
    return x, np.array([r.label for r in rows], dtype=np.float32)


@lru_cache(maxsize=8)
def trained_onnx(site: str) -> bytes:
    """An MLP trained on one hospital's records (or all of them for ``pooled``), exported to ONNX."""
    torch.manual_seed(7)
    torch.set_num_threads(1)  # a tiny network: threads only contend with the other tests
    rows = [r for r in heart_records() if r.label is not None and site in ("pooled", r.record.hospital)]
    x, y = _matrix(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature one hospital never records: median 0
        median = np.nan_to_num(np.nanmedian(x, axis=0))
    filled = np.where(np.isnan(x), median, x)
    scale = filled.std(axis=0)
    model = _Scorer(median, filled.mean(axis=0), np.where(scale > 1e-6, scale, 1.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-2)
    features, labels = torch.tensor(x), torch.tensor(y)
    for _ in range(120):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy(model(features), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, x.shape[1]),),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=17,
            dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return buffer.getvalue()


@lru_cache(maxsize=8)
def _session(site: str) -> ort.InferenceSession:
    return ort.InferenceSession(trained_onnx(site), providers=["CPUExecutionProvider"])


def onnx_probabilities(site: str, x: np.ndarray) -> np.ndarray:
    [p] = _session(site).run([OUTPUT_NAME], {INPUT_NAME: np.asarray(x, dtype=np.float32)})
    return np.asarray(p, dtype=np.float64)


def cross_site_auc(site: str) -> dict[str, float]:
    out = {}
    for hospital in ("cleveland", "hungary", "va-long-beach", "switzerland"):
        rows = [r for r in heart_records() if r.label is not None and r.record.hospital == hospital]
        if hospital != site and len({r.label for r in rows}) == 2:
            x, y = _matrix(rows)
            out[hospital] = float(roc_auc_score(y, onnx_probabilities(site, x)))
    return out


@lru_cache(maxsize=8)
def card_for(site: str) -> ModelCard:
    cross = cross_site_auc(site)
    return ModelCard(
        task=TASK,
        site=site,
        version=VERSION,
        status="active",
        created_at=WHEN,
        metrics={"auc": float(np.mean(list(cross.values())))},
        features=heart_task().feature_names,
        artifact_uri=f"file:///models/{TASK}/{site}/{VERSION}/model.onnx",
        artifact_sha256=hashlib.sha256(trained_onnx(site)).hexdigest(),  # infer checks it before loading
        cross_site=cross,
        opset=17,
    )


def install_models(models_root: Path, sites: tuple[str, ...]) -> list[ModelCard]:
    """Write each site's model and card into a registry laid out as ``shared/registry.py`` says."""
    cards = []
    for site in sites:
        card = card_for(site)
        directory = models_root / TASK / site / VERSION
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(trained_onnx(site))
        (directory / CARD_FILE).write_text(card.model_dump_json(indent=2))
        cards.append(card)
    return cards


def quality_flags(record: HeartRecord) -> list[QualityFlag]:
    """What clean would say about this record: implausible values (Switzerland's cholesterol of 0) and gaps."""
    flags = []
    if record.raw.get("observations") and any(
        o.get("value") == 0.0 and o["code"]["code"] == "2093-3" for o in record.raw["observations"]
    ):  # type: ignore[union-attr]
        flags.append(
            QualityFlag(
                kind="implausible",
                field="http://loinc.org|2093-3",
                detail="cholesterol outside the plausible range 70–700 mg/dL; treated as missing",
            )
        )
    for name, value in zip(heart_task().feature_names, record.features, strict=True):
        if value is None and not name.startswith(("chest_pain", "resting_ecg", "st_slope", "thallium")):
            flags.append(QualityFlag(kind="missing", field=name, detail="not in the record"))
    return flags


def fused_for(record: HeartRecord, sites: tuple[str, ...]) -> FusedPrediction:
    """The fused result fuse would emit for ``record``: each site's model scores it, and fuse's own code
    (``services.fuse.join.fuse``, the task's fusion settings) weighs, combines and verifies."""
    from services.fuse.directory import ModelDirectory
    from services.fuse.join import fuse

    x = np.array([[np.nan if v is None else v for v in record.features]], dtype=np.float32)
    directory = ModelDirectory([card_for(site) for site in sites])
    predictions = []
    for site in sites:
        probability = float(onnx_probabilities(site, x)[0])
        predictions.append(
            Prediction(
                record_id=record.record.record_id,
                patient=record.record.patient,
                hospital=record.record.hospital,
                task=TASK,
                model=ModelRef(task=TASK, site=site, version=VERSION),
                probability=probability,
                label=int(probability >= 0.5),
                features=record.features,
                quality_flags=quality_flags(record),
            )
        )
    return fuse(heart_task().fusion, predictions, directory.expected(TASK), directory.card).result


def record_from(hospital: str, index: int = 0) -> HeartRecord:
    return [r for r in heart_records() if r.record.hospital == hospital][index]
