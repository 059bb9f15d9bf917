"""``predictions`` (one per record and model) and ``predictions.fused`` (one per record and task)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from shared.schemas.models import ModelRef
from shared.schemas.records import QualityFlag

FusionMethod = Literal["weighted_average", "logit_average", "majority_vote"]


class Prediction(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())

    record_id: str
    patient: str
    hospital: str
    task: str
    model: ModelRef
    probability: float = Field(ge=0.0, le=1.0)
    label: int
    cache_hit: bool = False
    latency_ms: float = 0.0
    features: list[FiniteFloat | None] = Field(default_factory=list, description="the task's feature vector scored")
    quality_flags: list[QualityFlag] = Field(default_factory=list, description="carried from records.clean")


class Contribution(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model: ModelRef
    probability: float
    weight: float


class FusedPrediction(BaseModel):
    model_config = ConfigDict(frozen=True)

    record_id: str
    patient: str
    hospital: str
    task: str
    probability: float = Field(ge=0.0, le=1.0)
    label: int
    method: FusionMethod
    contributions: list[Contribution]
    agreement: float = Field(ge=0.0, le=1.0, description="1 = every model agrees")
    needs_review: bool = False
    review_reasons: list[str] = Field(default_factory=list)
    features: list[FiniteFloat | None] = Field(
        default_factory=list, description="the task's feature vector, for reports"
    )
    quality_flags: list[QualityFlag] = Field(default_factory=list, description="carried from records.clean")
