"""report wiring: ``predictions.fused`` in, ``reports`` out, ``GET /reports/{report_id}``.

This first version receives and validates fused results; rendering arrives with the report issue.
"""

from __future__ import annotations

from faststream.kafka.annotations import KafkaMessage

from shared.http import Request, Response
from shared.schemas.predictions import FusedPrediction
from shared.schemas.reports import ReportMessage
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def create_service(settings: Settings | None = None) -> Service:
    service = Service("report", settings)
    service.publisher(Topic.REPORTS, entity="report", verb="published", schema=ReportMessage,
                      description="A report per fused result, with its FHIR RiskAssessment and URL.")

    @service.subscriber(Topic.PREDICTIONS_FUSED, description="Fused results from fuse.")
    async def on_fused(message: KafkaMessage) -> None:
        await service.accept(message.raw_message, FusedPrediction)

    async def get_report(request: Request) -> Response:
        return Response.json({"error": f"no report {request.params['report_id']!r}"}, 404)

    service.http.get("/reports/{report_id}", get_report)
    return service
