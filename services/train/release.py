"""Releasing a trained model: its files into the registry, its card built, the other versions retired."""

from __future__ import annotations

from datetime import UTC, datetime

from services.train.adapters.registry_writer import RegistryWriter, artifact_uri, new_version, sha256_of
from services.train.training import TrainedModel
from shared.schemas.models import ModelCard, ModelStatus


def release(
    trained: TrainedModel, writer: RegistryWriter, status: ModelStatus = "active", now: datetime | None = None
) -> list[ModelCard]:
    """Every card that changed, the new one last (publish them all on ``models.released``)."""
    now = now or datetime.now(UTC)
    directory = writer.write_artifacts(trained.task, trained.site, new_version(now), trained.onnx, trained.plots)
    card = ModelCard(
        task=trained.task,
        site=trained.site,
        version=directory.name,
        status=status,
        created_at=now,
        metrics=trained.metrics,
        features=list(trained.feature_names),
        threshold=0.5,
        artifact_uri=artifact_uri(directory),
        artifact_sha256=sha256_of(directory / "model.onnx"),
        training_data_fingerprint=trained.fingerprint,
        cross_site=trained.cross_site,
        opset=trained.opset,
        plots=sorted(trained.plots),
        hyperparameters=trained.hyperparameters,
        data=trained.data,
        distributions=trained.distributions,
    )
    return writer.release(directory, card)
