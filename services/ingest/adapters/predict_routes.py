"""Adapter: synchronous predictions on ingest's HTTP port, behind ``system/RiskAssessment.read``.

- ``POST /predict/{task}``: a document (any format the stream reads) → each record's fused result, which models
  answered and which did not, and how long it took;
- ``POST /fhir/RiskAssessment/$predict``: the same, ``?task=`` naming the task (one task: its only one), answered as
  a FHIR Bundle of preliminary RiskAssessments.

The hospital is the token's; nothing is stored or published. Each answer is audited (by pseudonym) before it goes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from services.ingest.predict import Predictor, StepFailed, risk_assessments
from shared.access import rest_event
from shared.auth import SCOPE_PREDICT, Gate
from shared.errors import RejectedInput
from shared.http import HttpApp, Refused, Request, Response
from shared.schemas.audit import AccessEvent
from shared.tasks import TaskSpec

FHIR_JSON = "application/fhir+json"


class PredictRoutes:
    def __init__(
        self, predictor: Predictor, tasks: Mapping[str, TaskSpec], audit: Callable[[AccessEvent], Awaitable[None]]
    ) -> None:
        self.predictor = predictor
        self.tasks = tasks
        self.audit = audit

    def install(self, http: HttpApp, gate: Gate, max_document_bytes: int) -> None:
        guard = gate.scoped(SCOPE_PREDICT)
        http.post("/predict/{task}", self.predict, guard=guard, max_body=max_document_bytes)
        http.post("/fhir/RiskAssessment/$predict", self.fhir_predict, guard=guard, max_body=max_document_bytes)

    async def predict(self, request: Request) -> Response:
        task = request.params["task"]
        answer = await self._answer(request, task, fhir=False)
        return answer if isinstance(answer, Response) else Response.json(answer)

    async def fhir_predict(self, request: Request) -> Response:
        task = request.query.get("task") or (next(iter(self.tasks)) if len(self.tasks) == 1 else "")
        answer = await self._answer(request, task, fhir=True)
        if isinstance(answer, Response):
            return answer
        outcome = self.tasks[task].label.positive_label
        return Response.json(risk_assessments(answer, outcome), 200, FHIR_JSON)

    async def _answer(self, request: Request, task: str, *, fhir: bool) -> dict[str, Any] | Response:
        principal = request.principal
        if principal is None or not principal.hospital:
            raise Refused(403, "access_denied", "this token acts for no hospital; predict with a hospital's token")
        if task not in self.tasks:
            known = ", ".join(sorted(self.tasks))
            return _outcome(404, "not-found", f"no task {task!r}; the tasks are: {known} (?task= on $predict)", fhir)
        token = request.headers.get("authorization", "").partition(" ")[2]

        async def audit(patients: list[str]) -> None:
            for patient in patients:
                event = rest_event(
                    "ingest",
                    request,
                    principal,
                    "operation",
                    resource=f"RiskAssessment/$predict?task={task}",
                    patient=patient,
                    description="a synchronous prediction asked for",
                )
                try:
                    await self.audit(event)
                except Exception as failed:
                    raise _Unaudited from failed

        try:
            return await self.predictor.predict(
                request.body, request.headers.get("content-type", ""), principal.hospital, task, token, audit
            )
        except RejectedInput as rejected:
            return _outcome(422, "invalid", str(rejected), fhir)
        except StepFailed as failed:
            status = failed.status if failed.status in (400, 403, 422, 503) else 502
            return _outcome(status, "transient" if status >= 500 else "processing", str(failed), fhir)
        except _Unaudited:  # a prediction that cannot be audited is not given
            raise Refused(503, "temporarily_unavailable", "the prediction cannot be audited now; try again") from None


class _Unaudited(Exception):
    """The broker did not take the audit event."""


def _outcome(status: int, code: str, reason: str, fhir: bool) -> Response:
    if not fhir:
        return Response.json({"error": code, "error_description": reason}, status)
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": reason}]}
    return Response.json(body, status, FHIR_JSON)
