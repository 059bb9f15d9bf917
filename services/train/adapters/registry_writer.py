"""Writes the model registry (layout and ONNX convention in ``shared/registry.py``) and changes model status.

One model per (task, site) is ``active`` at a time: releasing or promoting a version retires the others, so
infer and fuse never have to choose between two active versions of the same site. Every changed card is returned
so the caller can publish it on ``models.released``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from shared.files import write_atomically
from shared.registry import CARD_FILE, MODEL_FILE, read_card
from shared.schemas.models import ModelCard, ModelStatus


def new_version(now: datetime | None = None) -> str:
    """A version that sorts by creation time: ``YYYYMMDDTHHMMSSmmmZ``."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_card(directory: Path, card: ModelCard) -> None:
    write_atomically(directory / CARD_FILE, card.model_dump_json(indent=2).encode())


class RegistryWriter:
    def __init__(self, root: Path) -> None:
        self.root = root

    def model_dir(self, task: str, site: str, version: str) -> Path:
        return self.root / task / site / version

    def write_artifacts(self, task: str, site: str, version: str, onnx: bytes, plots: dict[str, bytes]) -> Path:
        """A new version folder holding ``model.onnx`` and the plots; a taken version gets a numeric suffix."""
        directory, suffix = self.model_dir(task, site, version), 1
        while directory.exists():
            suffix += 1
            directory = self.model_dir(task, site, f"{version}-{suffix}")
        directory.mkdir(parents=True)
        write_atomically(directory / MODEL_FILE, onnx)
        for name, png in plots.items():
            write_atomically(directory / name, png)
        return directory

    def cards(self, task: str, site: str) -> list[tuple[Path, ModelCard]]:
        found = [(p.parent, read_card(p.parent)) for p in (self.root / task / site).glob(f"*/{CARD_FILE}")]
        return sorted(found, key=lambda pair: pair[1].created_at)

    def release(self, directory: Path, card: ModelCard) -> list[ModelCard]:
        """Write ``card`` (its ``model.onnx`` and plots are already in ``directory``); make it the active one."""
        sha = sha256_of(directory / MODEL_FILE)
        if sha != card.artifact_sha256:
            raise ValueError(f"{directory / MODEL_FILE} changed after export: sha256 differs from the card")
        write_card(directory, card)
        return self._activate(card) if card.status == "active" else [card]

    def set_status(self, task: str, site: str, version: str, status: ModelStatus) -> list[ModelCard]:
        directory = self.model_dir(task, site, version)
        if not (directory / CARD_FILE).exists():
            raise LookupError(f"no model {task}/{site}/{version} in the registry at {self.root}")
        card = read_card(directory).model_copy(update={"status": status})
        write_card(directory, card)
        return self._activate(card) if status == "active" else [card]

    def _activate(self, card: ModelCard) -> list[ModelCard]:
        changed = []
        for directory, other in self.cards(card.task, card.site):
            if other.version != card.version and other.status == "active":
                retired = other.model_copy(update={"status": "retired"})
                write_card(directory, retired)
                changed.append(retired)
        return [*changed, card]


def artifact_uri(directory: Path) -> str:
    return (directory / MODEL_FILE).resolve().as_uri()


def model_file(directory: Path) -> Path:
    return directory / MODEL_FILE
