"""``models.released`` (model cards) and ``train.requests``."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ModelStatus = Literal["candidate", "active", "retired"]


class ModelRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    site: str = Field(description="hospital id, or 'pooled'")
    version: str


class ModelCard(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())

    task: str
    site: str
    version: str
    status: ModelStatus
    created_at: AwareDatetime
    metrics: dict[str, float] = Field(default_factory=dict)
    features: list[str] = Field(default_factory=list, description="feature names, in the order the model reads")
    threshold: float = 0.5
    artifact_uri: str
    artifact_sha256: str
    training_data_fingerprint: str = ""
    cross_site: dict[str, float] = Field(default_factory=dict, description="AUC on each other site's data")
    opset: int | None = Field(None, description="ONNX opset of the artifact")
    plots: list[str] = Field(default_factory=list, description="evaluation plots beside the card (file names)")
    hyperparameters: dict[str, float] = Field(default_factory=dict, description="the selected search point")
    data: dict[str, int] = Field(default_factory=dict, description="rows per split and positives")

    @property
    def ref(self) -> ModelRef:
        return ModelRef(task=self.task, site=self.site, version=self.version)


class TrainRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    site: str | None = Field(None, description="hospital id; omitted = pooled over every hospital")
    requested_by: str = "api"
