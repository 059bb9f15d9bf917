"""report's HTTP entrypoint: ``GET /reports/{report_id}`` (HTML, ``?format=pdf``, ``?format=fhir``) and
``GET /patients/{pseudonym}/reports`` (the patient's reports, newest first). The PDF is rendered on first
request (``pdf``: report id -> bytes, ``Reporter.pdf``), off the event loop like every file read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.report.ports import ReportStore
from shared.http import Request, Response

CONTENT_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "fhir": "application/fhir+json"}


class ReportRoutes:
    def __init__(self, store: ReportStore, pdf: Callable[[str], bytes | None]) -> None:
        self.store = store
        self.pdf = pdf

    async def report(self, request: Request) -> Response:
        report_id = request.params["report_id"]
        fmt = request.query.get("format", "html")
        if fmt not in CONTENT_TYPES:
            return Response.json({"error": f"unknown format {fmt!r}; use html, pdf or fhir"}, 400)
        if fmt == "pdf":
            body = await asyncio.to_thread(self.pdf, report_id)
        else:
            body = await asyncio.to_thread(self.store.read, report_id, fmt)
        if body is None:
            return Response.json({"error": f"no report {report_id!r}"}, 404)
        headers = {"content-disposition": f'inline; filename="report-{report_id}.pdf"'} if fmt == "pdf" else {}
        return Response(body, content_type=CONTENT_TYPES[fmt], headers=headers)

    async def patient_reports(self, request: Request) -> Response:
        entries = await asyncio.to_thread(self.store.for_patient, request.params["pseudonym"])
        return Response.json(
            {"patient": request.params["pseudonym"], "reports": [e.model_dump(mode="json") for e in entries]}
        )
