"""Adapter: the FHIR REST intake's routes on ingest's HTTP port, each behind ``system/Bundle.write``.

- ``POST /fhir``: a Bundle (transaction, batch, collection, message);
- ``POST /fhir/$import``: NDJSON, one resource per line (back-loading history);
- ``POST /fhir/{resource_type}``: one resource.

The hospital is the token's ``hospital`` claim, never a header or the document: a token that acts for no hospital is
refused (403, audited like every refusal).
"""

from __future__ import annotations

import json

from services.ingest.fhir_rest import Answer, FhirIntake
from shared.auth import SCOPE_SUBMIT, Gate
from shared.http import HttpApp, Refused, Request, Response

IMPORT_MAX_BYTES = 16 * 1024 * 1024
"""An NDJSON upload's limit: split a larger export into files (each line is read and written on its own anyway)."""


class FhirRoutes:
    def __init__(self, intake: FhirIntake) -> None:
        self.intake = intake

    def install(self, http: HttpApp, gate: Gate, max_document_bytes: int) -> None:
        """``$import`` before ``{resource_type}``: both patterns match ``/fhir/$import``, the first declared wins."""
        guard = gate.scoped(SCOPE_SUBMIT)
        http.post("/fhir", self.bundle, guard=guard, max_body=max_document_bytes)
        http.post("/fhir/$import", self.bulk, guard=guard, max_body=IMPORT_MAX_BYTES)
        http.post("/fhir/{resource_type}", self.resource, guard=guard, max_body=max_document_bytes)

    async def bundle(self, request: Request) -> Response:
        return _response(await self.intake.submit(_hospital(request), request.body, _content_type(request)))

    async def resource(self, request: Request) -> Response:
        kind = request.params["resource_type"]
        return _response(await self.intake.submit(_hospital(request), request.body, _content_type(request), kind))

    async def bulk(self, request: Request) -> Response:
        return _response(await self.intake.bulk_import(_hospital(request), request.body, _content_type(request)))


def _hospital(request: Request) -> str:
    principal = request.principal
    if principal is None or not principal.hospital:
        raise Refused(
            403,
            "access_denied",
            "this token acts for no hospital; documents are submitted with a token of the hospital that sends them",
            principal,
        )
    return principal.hospital


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "")


def _response(answer: Answer) -> Response:
    content_type = "application/fhir+json" if answer.fhir else "application/json"
    return Response(json.dumps(answer.body).encode(), answer.status, content_type)
