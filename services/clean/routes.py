"""clean's HTTP entrypoint for synchronous predictions: ``POST /records/$clean`` cleans one canonical record as the
stream would (units, codes, quality flags, each task's features) and answers the clean record; nothing is stored or
published. A hospital's token cleans only its own records."""

from __future__ import annotations

from pydantic import ValidationError

from services.clean.cleaning import Cleaner
from shared.errors import describe_validation_error
from shared.http import Refused, Request, Response
from shared.schemas import CanonicalRecord


class CleanRoutes:
    def __init__(self, cleaner: Cleaner) -> None:
        self.cleaner = cleaner

    async def clean(self, request: Request) -> Response:
        try:
            record = CanonicalRecord.model_validate_json(request.body)
        except ValidationError as invalid:
            body = {"error": "invalid_record", "error_description": describe_validation_error(invalid)}
            return Response.json(body, 400)
        assert request.principal is not None  # the route's guard
        if record.hospital != request.principal.hospital:
            raise Refused(403, "access_denied", "a hospital's token cleans that hospital's records only")
        cleaned = self.cleaner.clean(record)
        return Response(cleaned.record.model_dump_json(exclude_none=True).encode(), content_type="application/json")
