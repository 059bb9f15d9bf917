"""``aimass quality`` reads records.clean on the real broker and prints the per-hospital table."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from services.cli.scenario.heart import records_by_hospital
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import Topic, cloudevent_headers, event_type, topic_name
from tests.support.factories.clean import SENDS, cleaner, record_of
from tests.support.kafka import producer
from tests.support.processes import environment

pytestmark = pytest.mark.integration


async def test_aimass_quality_prints_missingness_per_feature_and_hospital(settings: Settings) -> None:
    clean = cleaner()
    client = await producer(settings)
    try:
        for hospital, documents in records_by_hospital(limit_per_hospital=8).items():
            for doc in documents:
                record = clean.clean(record_of(SENDS[hospital](doc), hospital, str(uuid.uuid4()))).record
                headers = cloudevent_headers(
                    service="clean", type_=event_type("record", "cleaned"), event_id=str(uuid.uuid4())
                )
                await client.send_and_wait(
                    topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix),
                    record.model_dump_json().encode(),
                    key=record.patient.encode(),
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
    finally:
        await client.stop()
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "quality", "--task", "heart_disease", "--timeout", "10"],
        cwd=PROJECT_ROOT,
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line.split() for line in lines if line.startswith("feature"))
    assert {"cleveland", "hungary", "va-long-beach", "switzerland"} <= set(header)
    cholesterol = next(line.split() for line in lines if line.startswith("cholesterol "))
    assert cholesterol[header.index("switzerland")] == "100.0%"
    assert "breast_cancer" not in done.stdout
