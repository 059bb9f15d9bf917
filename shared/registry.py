"""The model registry on disk, shared by train (writes) and infer / fuse / report (read).

Layout under ``<data dir>/models``: ``<task>/<site>/<version>/`` holding ``model.onnx``, ``card.json`` (a
``ModelCard``) and the evaluation plots. ``site`` is a hospital id or ``pooled``; versions sort by creation time.

ONNX convention every model follows, so serving needs no per-model code:
- input ``features``: float32 ``[batch, n_features]`` in the task's declared feature order, NaN where missing
  (imputation and scaling are inside the graph);
- output ``probability``: float32 ``[batch]``, the probability of the task's positive label.
"""

from __future__ import annotations

from pathlib import Path

from shared.schemas.models import ModelCard
from shared.settings import Settings

INPUT_NAME = "features"
OUTPUT_NAME = "probability"
CARD_FILE = "card.json"
MODEL_FILE = "model.onnx"


def registry_root(settings: Settings) -> Path:
    return settings.data_path / "models"


def model_dir(settings: Settings, task: str, site: str, version: str) -> Path:
    return registry_root(settings) / task / site / version


def read_card(directory: Path) -> ModelCard:
    return ModelCard.model_validate_json((directory / CARD_FILE).read_text())


def list_cards(settings: Settings, task: str | None = None) -> list[ModelCard]:
    root = registry_root(settings)
    pattern = f"{task or '*'}/*/*/{CARD_FILE}"
    cards = [read_card(path.parent) for path in root.glob(pattern)]
    return sorted(cards, key=lambda c: (c.task, c.site, c.created_at))


def active_cards(settings: Settings, task: str | None = None) -> list[ModelCard]:
    return [c for c in list_cards(settings, task) if c.status == "active"]
