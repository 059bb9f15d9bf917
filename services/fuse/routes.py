"""fuse's HTTP entrypoint for synchronous predictions: ``POST /predictions/$fuse`` fuses the predictions of one
(record, task) as a complete join would be (the stream's fusion and verification, the same expected models and
weights), and says which models answered and which did not; nothing is stored or published."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError

from services.fuse.directory import ModelDirectory
from services.fuse.join import fuse
from shared.errors import RejectedInput, describe_validation_error
from shared.http import Refused, Request, Response
from shared.schemas.models import ModelRef
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.tasks import TaskSpec


class FuseRequest(BaseModel):
    predictions: list[Prediction] = Field(min_length=1, description="one record's predictions for one task")


class FuseAnswer(BaseModel):
    fused: FusedPrediction
    answered: list[ModelRef]
    missing: list[str] = Field(description="the expected models that gave no prediction (task/site/version)")


def fused_answer(spec: TaskSpec, predictions: list[Prediction], directory: ModelDirectory) -> FuseAnswer:
    if len({(p.record_id, p.task) for p in predictions}) != 1:
        raise RejectedInput("the predictions must be of one record and one task", "schema")
    joined = fuse(spec.fusion, predictions, directory.expected(spec.name), directory.card)
    return FuseAnswer(fused=joined.result, answered=[p.model for p in predictions], missing=joined.missing)


class FuseRoutes:
    def __init__(self, tasks: dict[str, TaskSpec], directory: ModelDirectory) -> None:
        self.tasks = tasks
        self.directory = directory

    async def fuse(self, request: Request) -> Response:
        try:
            asked = FuseRequest.model_validate_json(request.body)
        except ValidationError as invalid:
            body = {"error": "invalid_request", "error_description": describe_validation_error(invalid)}
            return Response.json(body, 400)
        assert request.principal is not None  # the route's guard
        if any(p.hospital != request.principal.hospital for p in asked.predictions):
            raise Refused(403, "access_denied", "a hospital's token fuses that hospital's predictions only")
        spec = self.tasks.get(asked.predictions[0].task)
        try:
            if spec is None:
                raise RejectedInput(f"no task file for task {asked.predictions[0].task!r}", "unknown_task")
            answer = fused_answer(spec, asked.predictions, self.directory)
        except RejectedInput as rejected:
            return Response.json({"error": rejected.reason_class, "error_description": rejected.reason}, 400)
        return Response(answer.model_dump_json().encode(), content_type="application/json")
