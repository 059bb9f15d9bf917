"""``models.released`` (model cards) and ``train.requests``."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ModelStatus = Literal["candidate", "active", "retired"]
DISTRIBUTION_MIN_ROWS = 10
"""A feature recorded by fewer training rows gets no distribution on the card: aggregates of few rows identify."""


class ModelRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    site: str = Field(description="hospital id, or 'pooled'")
    version: str


class FeatureDistribution(BaseModel):
    """One feature on the model's training split, over the rows that recorded it.

    ``numeric``: ``quantiles`` holds the 5th, 15th, ..., 95th percentiles (ten equally likely values);
    ``rate``: a 0/1 (one-hot or flag) feature, ``rate`` the share of recorded rows where it is 1.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["numeric", "rate"]
    n: int = Field(ge=DISTRIBUTION_MIN_ROWS, description="training rows that recorded the feature")
    quantiles: list[float] = Field(default_factory=list, description="numeric: the 5th, 15th, ..., 95th percentile")
    rate: float | None = Field(None, ge=0.0, le=1.0, description="rate: share of recorded rows where it is 1")


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
    distributions: dict[str, FeatureDistribution] = Field(
        default_factory=dict,
        description=(
            "feature name -> its distribution on the training split (what questioning weighs a missing input's "
            f"plausible values by); a feature recorded by fewer than {DISTRIBUTION_MIN_ROWS} training rows has "
            "none: a card is shared across institutions, and aggregates of few rows identify patients"
        ),
    )

    @property
    def ref(self) -> ModelRef:
        return ModelRef(task=self.task, site=self.site, version=self.version)


class TrainRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    site: str | None = Field(None, description="hospital id; omitted = pooled over every hospital")
    requested_by: str = "api"
