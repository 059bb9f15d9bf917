"""Synchronous prediction on the real stack: ingest, clean, infer and fuse as processes with five real ONNX models.
``POST /predict/{task}`` answers at once with what the stream later publishes for the same document (the same code),
says which models answered, and refuses what it cannot serve with the reason; ``$predict`` answers in FHIR."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from services.cli.scenario import formats
from services.cli.scenario.heart import records_by_hospital
from shared.auth import SCOPE_PREDICT, SCOPE_REPORTS, SCOPE_SUBMIT
from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import Topic
from tests.support.factories.report import install_models
from tests.support.identity import local_identity
from tests.support.kafka import TopicReader
from tests.support.processes import ServiceProcess, log_tails, start_all
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration
SITES = ("cleveland", "hungary", "va-long-beach", "switzerland", "pooled")
TASK = "heart_disease"
FHIR = "application/fhir+json"


@pytest.fixture(scope="module")
def predict_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    own = settings_for(tmp_path_factory.mktemp("predict-var"), f"it-predict-{uuid.uuid4().hex[:8]}.")
    install_models(own.data_path / "models", SITES)
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture(scope="module")
def services(predict_settings: Settings) -> Iterator[dict[str, ServiceProcess]]:
    processes = start_all(["ingest", "clean", "infer", "fuse"], predict_settings)
    try:
        yield processes
    finally:
        for process in processes.values():
            process.stop()


def bundle(row: int) -> bytes:
    return json.dumps(formats.fhir_bundle(records_by_hospital(8)["cleveland"][row])).encode()


def headers(scope: str) -> dict[str, str]:
    return {**local_identity().headers("cleveland", scope), "content-type": FHIR}


async def test_a_record_is_scored_by_every_model_at_once_as_the_stream_scores_it(
    services: dict[str, ServiceProcess], predict_settings: Settings
) -> None:
    url = services["ingest"].url
    fused = await TopicReader(predict_settings, Topic.PREDICTIONS_FUSED).open()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{url}/predict/{TASK}", content=bundle(0), headers=headers(SCOPE_PREDICT))
            assert answer.status_code == 200, answer.text + log_tails(services.values())
            [result] = answer.json()["results"]
            assert sorted(m["site"] for m in result["answered"]) == sorted(SITES) and result["missing"] == []
            assert 0.0 < result["probability"] < 1.0 and result["task"] == TASK

            # The same document through the stream (the FHIR REST door): the same patient, the same fused result.
            posted = await client.post(f"{url}/fhir", content=bundle(0), headers=headers(SCOPE_SUBMIT))
            assert posted.status_code == 202, posted.text
        [streamed] = await fused.wait_for(lambda r: json.loads(r.value)["patient"] == result["patient"], 1, 120)
    finally:
        await fused.close()
    published = json.loads(streamed.value)
    assert published["probability"] == pytest.approx(result["probability"], abs=1e-6)
    assert (published["label"], published["needs_review"]) == (result["label"], result["needs_review"])
    assert published["record_id"] != result["record_id"]  # nothing of the synchronous call was published


async def test_predict_in_fhir_is_a_bundle_of_preliminary_risk_assessments(services: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{services['ingest'].url}/fhir/RiskAssessment/$predict?task={TASK}",
            content=bundle(1),
            headers=headers(SCOPE_PREDICT),
        )
    assert answer.status_code == 200 and answer.headers["content-type"] == FHIR
    [entry] = Bundle.model_validate(answer.json()).entry
    assessment = entry.resource
    assert assessment.status == "preliminary" and len(assessment.basis) == len(SITES)
    assert 0 < float(assessment.prediction[0].probabilityDecimal) < 1


async def test_what_cannot_be_predicted_is_refused_with_the_reason(services: dict[str, ServiceProcess]) -> None:
    url = services["ingest"].url
    async with httpx.AsyncClient(timeout=30) as client:
        garbled = await client.post(f"{url}/predict/{TASK}", content=b"{not json", headers=headers(SCOPE_PREDICT))
        unknown = await client.post(f"{url}/predict/kidney", content=bundle(2), headers=headers(SCOPE_PREDICT))
        other_task = await client.post(
            f"{url}/predict/breast_cancer", content=bundle(2), headers=headers(SCOPE_PREDICT)
        )
        fhir_garbled = await client.post(
            f"{url}/fhir/RiskAssessment/$predict?task={TASK}", content=b"[]", headers=headers(SCOPE_PREDICT)
        )
        no_scope = await client.post(f"{url}/predict/{TASK}", content=bundle(2), headers=headers(SCOPE_REPORTS))
        operator = {**local_identity().headers(), "content-type": FHIR}  # the monitoring client: no hospital
        no_hospital = await client.post(f"{url}/predict/{TASK}", content=bundle(2), headers=operator)
    assert garbled.status_code == 422 and "FHIR" in garbled.json()["error_description"]
    assert unknown.status_code == 404 and "heart_disease" in unknown.json()["error_description"]
    assert other_task.status_code == 422 and "no features for task 'breast_cancer'" in other_task.text
    assert fhir_garbled.status_code == 422
    assert OperationOutcome.model_validate(fhir_garbled.json()).issue[0].code == "invalid"
    assert no_scope.status_code == 403 and no_hospital.status_code == 403
