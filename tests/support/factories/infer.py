"""Clean records, raw Kafka records and loaded ONNX models for infer's unit tests."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord

from services.infer.adapters.onnx_runtime import OnnxLoader
from services.infer.catalog import ModelCatalog
from services.infer.ports import Scorer
from shared.schemas.models import ModelCard
from shared.schemas.records import CleanRecord, QualityFlag, TaskFeatures
from shared.settings import Settings
from tests.support.models import write_model

FEATURES = ["age", "cholesterol", "max_heart_rate"]


def clean_record(
    n: int, values: Sequence[float | None] = (63.0, None, 150.0), task: str = "heart", names: Sequence[str] = FEATURES
) -> CleanRecord:
    return CleanRecord(
        record_id=f"record-{n}",
        patient=f"patient-{n}",
        hospital="cleveland",
        received_at="2026-01-05T08:00:00Z",
        source_format="json",
        quality_flags=[QualityFlag(kind="missing", field="cholesterol")],
        features={task: TaskFeatures(names=list(names), values=list(values))},
    )


def raw(value: bytes, offset: int = 0, ce_id: str | None = None) -> ConsumerRecord:
    headers = [("ce_id", ce_id.encode())] if ce_id else []
    return ConsumerRecord(
        topic="t.records.clean",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=headers,
    )


def raw_record(record: CleanRecord, offset: int = 0) -> ConsumerRecord:
    return raw(record.model_dump_json().encode(), offset, ce_id=f"ce-{record.record_id}")


def loaded_catalog(
    settings: Settings,
    task: str = "heart",
    sites: Sequence[str] = ("cleveland", "pooled"),
) -> tuple[ModelCatalog[Scorer], list[ModelCard]]:
    catalog: ModelCatalog[Scorer] = ModelCatalog()
    loader = OnnxLoader(settings)
    cards = []
    for seed, site in enumerate(sites):
        card, _ = write_model(settings, task, site, FEATURES, seed=seed)
        catalog.put(card, loader.load(card))
        cards.append(card)
    return catalog, cards
