"""infer's HTTP entrypoint for synchronous predictions: ``POST /records/$score`` scores one clean record with every
active model of each task it has features for, as a batch of one (the stream's planning, scoring and prediction
code), and answers the predictions; nothing is cached or published."""

from __future__ import annotations

from pydantic import ValidationError

from services.infer.batch import plan_groups
from services.infer.catalog import ModelCatalog
from services.infer.handlers import score_misses
from services.infer.ports import Scorer
from services.infer.scoring import ScoringInput, prediction, rows_by_task
from shared.errors import describe_validation_error
from shared.http import Refused, Request, Response
from shared.schemas.predictions import Prediction


def predictions_of(record: ScoringInput, catalog: ModelCatalog[Scorer]) -> list[Prediction]:
    groups = plan_groups(rows_by_task([(0, record.record_id, record)]), catalog.snapshot())
    score_misses(groups)
    made = []
    for group in groups:
        card = group.model.card
        for i, scored in enumerate(group.rows.records):
            probability = float(group.probabilities[i])
            made.append(prediction(scored, group.rows.task, card, card.ref, probability, False, group.seconds * 1000))
    return made


class ScoreRoutes:
    def __init__(self, catalog: ModelCatalog[Scorer]) -> None:
        self.catalog = catalog

    async def score(self, request: Request) -> Response:
        try:
            record = ScoringInput.model_validate_json(request.body)
        except ValidationError as invalid:
            body = {"error": "invalid_record", "error_description": describe_validation_error(invalid)}
            return Response.json(body, 400)
        assert request.principal is not None  # the route's guard
        if record.hospital != request.principal.hospital:
            raise Refused(403, "access_denied", "a hospital's token scores that hospital's records only")
        made = predictions_of(record, self.catalog)
        return Response.json({"predictions": [p.model_dump(mode="json") for p in made]})
