"""Synchronous predictions (``POST /predict/{task}``, ``POST /fhir/RiskAssessment/$predict``): one document read as
the stream reads it (this service's own reader, the caller's hospital), then cleaned, scored by every active model
and fused by clean, infer and fuse over HTTP, each step that service's own code; the answer goes back at once and
nothing is stored or published. The caller's token travels with each step, and each step checks it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from fhir.resources.R4B.riskassessment import RiskAssessment

from services.ingest.documents import envelope_of
from services.ingest.ports import DocumentReader
from shared.errors import RejectedInput
from shared.topics import CE_ID, CE_SOURCE

Post = Callable[[str, str, bytes, str], Awaitable[dict[str, Any]]]
"""``(service, path, body, token)`` → the JSON answer; raises ``StepFailed``."""
Audit = Callable[[list[str]], Awaitable[None]]
"""Records that the caller asked for a prediction of these patients (pseudonyms); raises when it cannot."""


async def _nothing_to_audit(_: list[str]) -> None:
    return None


class StepFailed(Exception):
    """A step answered with an error or not at all: its status (503 when unreachable) and what it said."""

    def __init__(self, service: str, status: int, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.status = status
        self.reason = reason


class Predictor:
    def __init__(self, read: DocumentReader, post: Post, clock: Callable[[], float] = time.perf_counter) -> None:
        self.read = read
        self.post = post
        self.clock = clock

    async def predict(
        self,
        document: bytes,
        content_type: str,
        hospital: str,
        task: str,
        token: str,
        audit: Audit = _nothing_to_audit,
    ) -> dict[str, Any]:
        """Every record of the document, fused for ``task``; ``RejectedInput`` when the document cannot be read.

        ``audit`` runs once the patients are known, alongside the steps (its broker round trip would otherwise add
        to every answer), and the answer waits for it: no result leaves unaudited."""
        started = self.clock()
        steps = _Steps(self.clock)
        headers = {CE_SOURCE: hospital, CE_ID: f"predict/{uuid.uuid4()}", "content-type": content_type}
        ingested = self.read(document, headers, envelope_of(headers, headers[CE_ID], datetime.now(UTC)))
        steps.done("read")
        if not ingested.records:
            raise RejectedInput("the document holds no record to predict from", "empty")
        audited = asyncio.ensure_future(audit(sorted({record.patient for record in ingested.records})))
        try:
            results = [
                await self._one(record.model_dump_json().encode(), task, token, steps) for record in ingested.records
            ]
        finally:
            await audited  # also when a step failed: the patients' data was asked about either way
            steps.done("audit")
        return {
            "task": task,
            "results": results,
            "elapsed_ms": round((self.clock() - started) * 1000, 2),
            "steps_ms": steps.taken,
        }

    async def _one(self, record: bytes, task: str, token: str, steps: _Steps) -> dict[str, Any]:
        clean = await self.post("clean", "/records/$clean", record, token)
        steps.done("clean")
        if task not in clean.get("features", {}):
            raise RejectedInput(f"the record has no features for task {task!r}: the task file does not apply to it")
        scored = await self.post("infer", "/records/$score", _json(clean), token)
        steps.done("infer")
        predictions = [p for p in scored["predictions"] if p["task"] == task]
        if not predictions:
            raise StepFailed("infer", 503, f"no model of task {task!r} serves yet; train one (aimass train {task})")
        fused = await self.post("fuse", "/predictions/$fuse", _json({"predictions": predictions}), token)
        steps.done("fuse")
        return {**fused["fused"], "answered": fused["answered"], "missing": fused["missing"]}


class _Steps:
    """Milliseconds each step took, summed over the document's records: where an answer's time went."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.mark = clock()
        self.taken: dict[str, float] = {}

    def done(self, step: str) -> None:
        now = self.clock()
        self.taken[step] = round(self.taken.get(step, 0.0) + (now - self.mark) * 1000, 2)
        self.mark = now


def _json(value: object) -> bytes:
    return orjson.dumps(value)


def risk_assessments(answer: Mapping[str, Any], outcome: str) -> dict[str, Any]:
    """The answer as a FHIR ``Bundle`` of preliminary ``RiskAssessment``s (``$predict``), one per record."""
    entries = []
    for result in answer["results"]:
        resource = RiskAssessment.model_validate(
            {
                "resourceType": "RiskAssessment",
                "status": "preliminary",
                "subject": {"identifier": {"system": "urn:aimass:pseudonym", "value": result["patient"]}},
                "occurrenceDateTime": datetime.now(UTC).isoformat(),
                "method": {"text": f"{result['method']} of {len(result['answered'])} models (AI Mass)"},
                "basis": [{"display": f"{m['task']}/{m['site']}/{m['version']}"} for m in result["answered"]],
                "prediction": [{"outcome": {"text": outcome}, "probabilityDecimal": result["probability"]}],
                "note": [{"text": reason} for reason in result["review_reasons"]],
            }
        )
        entries.append({"resource": resource.model_dump(mode="json", exclude_none=True)})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
