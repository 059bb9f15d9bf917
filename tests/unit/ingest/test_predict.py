"""The synchronous prediction's orchestration on a recording stand-in for the three services: the document read as
the stream reads it, each step given the caller's token in order, and the answer as FHIR RiskAssessments."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from services.cli.scenario import formats
from services.cli.scenario.heart import records_by_hospital
from services.ingest.documents import ReadOptions, read_document
from services.ingest.predict import Predictor, StepFailed, risk_assessments
from shared.errors import RejectedInput
from tests.support.factories.ingest import TABLES, pseudonymize

TASK = "heart_disease"
FHIR = "application/fhir+json"


class Services:
    """What clean, infer and fuse would answer, and what each was asked, in order."""

    def __init__(self, models: int = 2) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.models = models

    async def post(self, service: str, path: str, body: bytes, token: str) -> dict[str, Any]:
        self.calls.append((service, path, token))
        sent = json.loads(body)
        if service == "clean":
            return {**sent, "features": {TASK: {"names": ["age"], "values": [63.0]}}}
        if service == "infer":
            model = {"task": TASK, "version": "v1"}
            return {
                "predictions": [
                    {"task": TASK, "record_id": sent["record_id"], "model": {**model, "site": s}}
                    for s in ("cleveland", "hungary")[: self.models]
                ]
            }
        return {
            "fused": {
                "record_id": sent["predictions"][0]["record_id"],
                "patient": "p" * 32,
                "probability": 0.7,
                "label": 1,
                "method": "weighted_average",
                "needs_review": False,
                "review_reasons": [],
            },
            "answered": [p["model"] for p in sent["predictions"]],
            "missing": [],
        }


def reader() -> partial:
    return partial(read_document, pseudonymize=pseudonymize, max_bytes=2_000_000, options=ReadOptions(tables=TABLES))


def bundle() -> bytes:
    return json.dumps(formats.fhir_bundle(records_by_hospital(2)["cleveland"][0])).encode()


async def test_a_document_is_read_then_cleaned_scored_and_fused_in_order_with_the_callers_token() -> None:
    services = Services()
    answer = await Predictor(reader(), services.post).predict(bundle(), FHIR, "cleveland", TASK, "tok-1")
    assert [(s, p) for s, p, _ in services.calls] == [
        ("clean", "/records/$clean"),
        ("infer", "/records/$score"),
        ("fuse", "/predictions/$fuse"),
    ]
    assert {t for _, _, t in services.calls} == {"tok-1"}
    [result] = answer["results"]
    assert result["probability"] == 0.7 and [m["site"] for m in result["answered"]] == ["cleveland", "hungary"]
    assert answer["elapsed_ms"] >= 0
    fhir = Bundle.model_validate(risk_assessments(answer, "coronary artery disease"))
    [entry] = fhir.entry
    assert float(entry.resource.prediction[0].probabilityDecimal) == 0.7 and entry.resource.status == "preliminary"


async def test_the_answer_says_how_long_each_step_took() -> None:
    now = [0.0]  # a clock each stand-in moves on by its own amount, so each step's share is known
    taken = {"clean": 0.002, "infer": 0.003, "fuse": 0.005}
    services = Services()

    def read(*args: Any) -> Any:
        now[0] += 0.007
        return reader()(*args)

    async def post(service: str, path: str, body: bytes, token: str) -> dict[str, Any]:
        now[0] += taken[service]
        return await services.post(service, path, body, token)

    async def audit(_: list[str]) -> None:
        now[0] += 0.011

    answer = await Predictor(read, post, clock=lambda: now[0]).predict(bundle(), FHIR, "cleveland", TASK, "t", audit)
    assert answer["steps_ms"] == pytest.approx({"read": 7, "clean": 2, "infer": 3, "fuse": 5, "audit": 11})
    assert answer["elapsed_ms"] == pytest.approx(28)


async def test_what_cannot_be_read_or_scored_says_why() -> None:
    with pytest.raises(RejectedInput, match="FHIR: Expecting property name"):
        await Predictor(reader(), Services().post).predict(b"{not json", FHIR, "cleveland", TASK, "t")
    with pytest.raises(RejectedInput, match="no features for task 'breast_cancer'"):
        await Predictor(reader(), Services().post).predict(bundle(), FHIR, "cleveland", "breast_cancer", "t")
    with pytest.raises(StepFailed, match="no model of task") as failed:
        await Predictor(reader(), Services(models=0).post).predict(bundle(), FHIR, "cleveland", TASK, "t")
    assert failed.value.status == 503


async def test_the_patients_are_audited_once_and_the_answer_waits_for_the_audit() -> None:
    services, audited = Services(), asyncio.Event()
    seen: list[list[str]] = []

    async def audit(patients: list[str]) -> None:
        seen.append(patients)
        await asyncio.sleep(0.05)  # longer than the steps: the answer must still wait for it
        audited.set()

    answer = await Predictor(reader(), services.post).predict(bundle(), FHIR, "cleveland", TASK, "t", audit)
    assert audited.is_set() and len(seen) == 1 and len(seen[0][0]) == 32 and answer["results"]


async def test_an_audit_the_broker_refuses_fails_the_prediction_and_a_failed_step_is_still_audited() -> None:
    async def refused(_: list[str]) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await Predictor(reader(), Services().post).predict(bundle(), FHIR, "cleveland", TASK, "t", refused)
    seen: list[list[str]] = []

    async def audit(patients: list[str]) -> None:
        seen.append(patients)

    with pytest.raises(StepFailed):
        await Predictor(reader(), Services(models=0).post).predict(bundle(), FHIR, "cleveland", TASK, "t", audit)
    assert len(seen) == 1
