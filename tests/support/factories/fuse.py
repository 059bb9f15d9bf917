"""Model cards and predictions for fuse's tests (unit and integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.registry import CARD_FILE
from shared.schemas.models import ModelCard, ModelRef, ModelStatus
from shared.schemas.predictions import Prediction

TASK = "heart_disease"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def card(
    site: str,
    version: str = "v1",
    *,
    cross_site: dict[str, float] | None = None,
    auc: float | None = None,
    status: ModelStatus = "active",
    task: str = TASK,
    minutes: int = 0,
    threshold: float = 0.5,
) -> ModelCard:
    return ModelCard(
        task=task,
        site=site,
        version=version,
        status=status,
        created_at=BASE_TIME + timedelta(minutes=minutes),
        metrics={} if auc is None else {"auc": auc},
        cross_site=cross_site or {},
        threshold=threshold,
        artifact_uri=f"file:///models/{task}/{site}/{version}/model.onnx",
        artifact_sha256="0" * 64,
    )


def write_card(models_root: Path, model: ModelCard) -> Path:
    directory = models_root / model.task / model.site / model.version
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CARD_FILE).write_text(model.model_dump_json(indent=2))
    return directory


def prediction(
    site: str,
    probability: float,
    *,
    record_id: str = "rec-1",
    hospital: str = "cleveland",
    version: str = "v1",
    task: str = TASK,
    patient: str = "p" * 32,
) -> Prediction:
    return Prediction(
        record_id=record_id,
        patient=patient,
        hospital=hospital,
        task=task,
        model=ModelRef(task=task, site=site, version=version),
        probability=probability,
        label=int(probability >= 0.5),
        features=[61.0, 1.0, None],
    )


# Three hospitals' models as the four-hospital scenario has them; weights for a Cleveland record use the
# cross-site AUCs on the other sites only (never Cleveland's own data).
THREE_CARDS = [
    card("hungary", cross_site={"cleveland": 0.86, "va-long-beach": 0.73, "switzerland": 0.70}),
    card("va-long-beach", cross_site={"cleveland": 0.84, "hungary": 0.90, "switzerland": 0.71}),
    card("switzerland", cross_site={"cleveland": 0.60, "hungary": 0.83, "va-long-beach": 0.64}),
]


def expected_weights_for_cleveland() -> dict[str, float]:
    skill = {
        "hungary": (0.73 + 0.70) / 2 - 0.5,
        "va-long-beach": (0.90 + 0.71) / 2 - 0.5,
        "switzerland": (0.83 + 0.64) / 2 - 0.5,
    }
    total = sum(skill.values())
    return {site: s / total for site, s in skill.items()}
