"""The train service on the real broker: a task it has never seen (scikit-learn's diabetes, binarized), declared by
a task file only, is materialized from records.clean, trained on request, released and served from the registry."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_diabetes
from sklearn.metrics import roc_auc_score

from shared.broker import ensure_topics
from shared.registry import INPUT_NAME, read_card
from shared.schemas import CleanRecord
from shared.schemas.models import ModelCard
from shared.settings import PROJECT_ROOT, Settings
from shared.tasks import feature_vector, label_of, load_task
from shared.topics import CE_ID, CONTENT_TYPE, DLQ_ERROR, DLQ_ORIGINAL_TOPIC, Topic, decode_headers, topic_name
from tests.support.identity import local_identity
from tests.support.kafka import TopicReader, producer, wait_until
from tests.support.processes import ServiceProcess
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration

DIABETES_TASK = """
name: diabetes_progression
description: Disease progression one year after baseline above 140 (scikit-learn diabetes, binarized)
label:
  code: {system: "urn:aimass:code", code: "diabetes-progression"}
  positive_above: 140
  positive_label: fast progression
  negative_label: slow progression
features:
  - {name: age, demographic: age_years}
  - {name: sex_code, code: {system: "urn:aimass:code", code: "diabetes-sex"}, unit: "1"}
  - {name: bmi, code: {system: "http://loinc.org", code: "39156-5"}, unit: "kg/m2"}
  - {name: mean_bp, code: {system: "urn:aimass:code", code: "diabetes-bp"}, unit: "mm[Hg]"}
  - {name: tc, code: {system: "urn:aimass:code", code: "diabetes-s1"}, unit: "mg/dL"}
  - {name: ldl, code: {system: "urn:aimass:code", code: "diabetes-s2"}, unit: "mg/dL"}
  - {name: hdl, code: {system: "urn:aimass:code", code: "diabetes-s3"}, unit: "mg/dL"}
  - {name: tch, code: {system: "urn:aimass:code", code: "diabetes-s4"}, unit: "1"}
  - {name: ltg, code: {system: "urn:aimass:code", code: "diabetes-s5"}, unit: "1"}
  - {name: glucose, code: {system: "urn:aimass:code", code: "diabetes-s6"}, unit: "mg/dL"}
model: {family: mlp, width: [8, 16], depth: [1], dropout: [0.0], weight_decay: [0.001], learning_rate: [0.003],
        trials: 2, max_epochs: 60, patience: 10, time_budget_seconds: 60, seed: 3}
test_fraction: 0.25
"""
COLUMNS = {
    "sex": ("urn:aimass:code", "diabetes-sex", "1"),
    "bmi": ("http://loinc.org", "39156-5", "kg/m2"),
    "bp": ("urn:aimass:code", "diabetes-bp", "mm[Hg]"),
    **{f"s{i}": ("urn:aimass:code", f"diabetes-s{i}", "1" if i in (4, 5) else "mg/dL") for i in range(1, 7)},
}


def diabetes_records() -> list[CleanRecord]:
    frame = load_diabetes(as_frame=True, scaled=False)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    records = []
    for index, row in enumerate(frame.data.to_dict("records")):
        observations = [
            {"code": {"system": s, "code": c}, "value": float(row[col]), "unit": u}
            for col, (s, c, u) in COLUMNS.items()
        ]
        observations.append(
            {
                "code": {"system": "urn:aimass:code", "code": "diabetes-progression"},
                "value": float(frame.target[index]),
                "unit": "1",
            }
        )
        records.append(
            CleanRecord.model_validate(
                {
                    "record_id": f"diabetes-{index:04d}",
                    "patient": f"{index:032x}",
                    "hospital": ["clinic-north", "clinic-south"][index % 2],
                    "received_at": now.isoformat(),
                    "source_format": "json",
                    "demographics": {"age_years": int(row["age"])},
                    "observations": observations,
                }
            )
        )
    return records


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Its own prefix, ports and registry: the session's six-service pipeline runs a train of its own."""
    own = settings_for(tmp_path_factory.mktemp("train"), f"trn-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tasks"
    directory.mkdir()
    shutil.copy(PROJECT_ROOT / "tasks" / "heart_disease.yaml", directory)
    (directory / "diabetes_progression.yaml").write_text(DIABETES_TASK)
    return directory


@pytest.fixture
def train_service(settings: Settings, tasks_dir: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess("train", settings, AIMASS_TASKS_DIR=str(tasks_dir)).start()
    process.wait_ready()
    yield process
    process.stop()


def stored_count(url: str, task: str) -> float:
    text = httpx.get(f"{url}/metrics", headers=local_identity().headers(), timeout=3).text
    return sum(
        float(v)
        for v in re.findall(rf'^aimass_train_store_records\{{[^}}]*task="{task}"[^}}]*\}} (\S+)$', text, re.MULTILINE)
    )


async def test_a_new_task_file_is_trained_released_and_serves_without_code_changes(
    settings: Settings, tasks_dir: Path, train_service: ServiceProcess
) -> None:
    records = diabetes_records()
    cards = await TopicReader(settings, Topic.MODELS_RELEASED).open()
    dead = await TopicReader(settings, Topic.DEADLETTER).open()
    client = await producer(settings)
    try:
        clean_topic = topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix)
        for record in [*records, records[0]]:  # the last one a redelivery: stored once
            await client.send(
                clean_topic,
                record.model_dump_json().encode(),
                key=record.patient.encode(),
                headers=[(CE_ID, str(uuid.uuid4()).encode()), (CONTENT_TYPE, b"application/json")],
            )
        await client.flush()
        await wait_until(
            lambda: stored_count(train_service.url, "diabetes_progression") >= len(records),
            60,
            "the diabetes records in the training store",
        )
        assert stored_count(train_service.url, "diabetes_progression") == len(records)

        requests = topic_name(Topic.TRAIN_REQUESTS, settings.topic_prefix)
        for body in ({"task": "diabetes_progression"}, {"task": "no_such_task"}):
            await client.send_and_wait(
                requests, json.dumps(body).encode(), headers=[(CE_ID, str(uuid.uuid4()).encode())]
            )
        [released] = await cards.wait_for(lambda r: True, timeout=180)
        [rejected] = await dead.wait_for(
            lambda r: decode_headers(r.headers).get(DLQ_ORIGINAL_TOPIC) == requests, timeout=30
        )
    finally:
        await client.stop()
        await cards.close()
        await dead.close()

    assert "no_such_task" in decode_headers(rejected.headers)[DLQ_ERROR]
    card = ModelCard.model_validate_json(released.value)
    assert (card.task, card.site, card.status) == ("diabetes_progression", "pooled", "active")
    assert set(card.cross_site) == {"clinic-north", "clinic-south"}
    assert card.metrics["onnx_parity_max_abs_diff"] <= 1e-5 and card.data["test"] == round(442 * 0.25)
    directory = settings.data_path / "models" / card.task / card.site / card.version
    assert read_card(directory) == card

    task = load_task(tasks_dir / "diabetes_progression.yaml")
    x = np.array([[np.nan if v is None else v for v in feature_vector(r, task)] for r in records], dtype=np.float32)
    y = np.array([label_of(r, task) for r in records])
    x[::7, 2] = np.nan  # BMI not recorded for some: the graph imputes
    session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    [probability] = session.run(None, {INPUT_NAME: x})
    assert probability.shape == (len(records),)
    assert roc_auc_score(y, probability) > 0.75
