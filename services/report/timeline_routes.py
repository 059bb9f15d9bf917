"""The health timeline's HTTP side (issue 20, item 1); the timeline itself is ``services.report.timeline`` (pure).

- ``GET /patients``: search across the token's hospital's patients (``hospital``, ``task``, ``needs_review``,
  ``from``/``to``, ``band``); a page for a browser, JSON otherwise;
- ``GET /patients/{pseudonym}``: the patient's timeline page (``?format=json``: the timeline as JSON);
- ``GET /patients/{pseudonym}/export?format=fhir|pdf``: the history as a FHIR ``collection`` Bundle, or a PDF.

Who may read: a token of the patient's hospital with ``system/DiagnosticReport.read``, or a signed link made for
the patient (``services.report.access.refusal``, as for the reports); every answer is audited before it goes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from services.report.access import authorize
from services.report.ports import ReportEntry, ReportStore
from services.report.render.history import history_bundle
from services.report.render.timeline_html import render_search_html, render_timeline_html
from services.report.render.timeline_pdf import render_timeline_pdf
from services.report.routes import Audit, audited
from services.report.timeline import (
    Reference,
    Search,
    Timeline,
    build_timeline,
    references_of,
    risk_band,
    search_patients,
)
from services.report.view import ReportView
from shared.http import Request, Response
from shared.links import signed_query
from shared.tasks import TaskSpec

HTML = "text/html; charset=utf-8"
FHIR = "application/fhir+json"
PRIVATE = {"cache-control": "private, no-store"}


class TimelineRoutes:
    def __init__(
        self,
        store: ReportStore,
        tasks: Mapping[str, TaskSpec],
        audit: Audit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.references: dict[str, dict[str, Reference]] = references_of(tasks)
        self.audit = audit
        self.clock = clock

    async def search(self, request: Request) -> Response:
        try:
            search = Search.from_query(request.query)
        except ValueError as why:
            return Response.json({"error": str(why)}, 400)
        assert request.principal is not None  # every route has a guard
        # A hospital's token searches its own patients only: naming another hospital is refused, not emptied.
        search = replace(search, hospital=search.hospital or request.principal.hospital or "")
        authorize(request, search.hospital or "")
        patients = await asyncio.to_thread(self.store.patients, search.hospital)
        hits = search_patients(patients, search)
        page = _wants_html(request)
        details = {**search.as_details(), "format": "html" if page else "json", "matches": str(len(hits))}
        await audited(self.audit, request, "search-type", "Patient", None, details=details)
        if page:
            return Response(render_search_html(hits, search, signed_query(request)), content_type=HTML, headers=PRIVATE)
        body = {
            "filters": search.as_details(),
            "patients": [
                {
                    "patient": hit.patient,
                    "hospital": hit.hospital,
                    "latest": hit.latest.isoformat(),
                    "results": [_entry(e) for e in hit.results],
                }
                for hit in hits
            ],
        }
        return _private(Response.json(body))

    async def timeline(self, request: Request) -> Response:
        fmt = request.query.get("format") or ("json" if _wants_json(request) else "html")
        if fmt not in ("html", "json"):
            return Response.json({"error": f"unknown format {fmt!r}; use html or json"}, 400)
        loaded = await self._load(request)
        if isinstance(loaded, Response):
            return loaded
        timeline, _ = loaded
        await audited(
            self.audit, request, "read", f"Patient/{timeline.patient}", timeline.patient, details={"format": fmt}
        )
        if fmt == "json":
            return _private(Response.json(timeline.model_dump(mode="json")))
        return Response(render_timeline_html(timeline, signed_query(request)), content_type=HTML, headers=PRIVATE)

    async def export(self, request: Request) -> Response:
        fmt = request.query.get("format", "fhir")
        if fmt not in ("fhir", "pdf"):
            return Response.json({"error": f"unknown format {fmt!r}; use fhir or pdf"}, 400)
        loaded = await self._load(request)
        if isinstance(loaded, Response):
            return loaded
        timeline, views = loaded
        now = datetime.fromtimestamp(self.clock(), UTC)
        if fmt == "pdf":
            body = await asyncio.to_thread(render_timeline_pdf, timeline, now)
            content_type, name = "application/pdf", f"timeline-{timeline.patient}.pdf"
        else:
            body = await asyncio.to_thread(self._bundle, timeline.patient, views, now)
            content_type, name = FHIR, f"timeline-{timeline.patient}.json"
        await audited(
            self.audit, request, "read", f"Patient/{timeline.patient}", timeline.patient, details={"format": fmt}
        )
        headers = {**PRIVATE, "content-disposition": f'inline; filename="{name}"'}
        return Response(body, content_type=content_type, headers=headers)

    async def _load(self, request: Request) -> tuple[Timeline, list[ReportView]] | Response:
        """The patient's timeline and its views, oldest first, once the principal may read every one of them; a
        404 (audited) for a patient without reports."""
        pseudonym = request.params["pseudonym"]
        entries = await asyncio.to_thread(self.store.for_patient, pseudonym)
        if not entries:
            await audited(self.audit, request, "read", f"Patient/{pseudonym}", None, "4", "no such patient")
            return Response.json({"error": f"no reports of patient {pseudonym!r}"}, 404)
        for hospital in sorted({entry.hospital for entry in entries}):
            authorize(request, hospital)
        views = await asyncio.to_thread(self._views, entries)
        return build_timeline(pseudonym, views, self.references), views

    def _views(self, entries: list[ReportEntry]) -> list[ReportView]:
        views = [view for entry in reversed(entries) if (view := self.store.view(entry.report_id)) is not None]
        return sorted(views, key=lambda v: (v.created_at, v.report_id))

    def _bundle(self, pseudonym: str, views: list[ReportView], now: datetime) -> bytes:
        stored = [body for view in views if (body := self.store.read(view.report_id, "fhir")) is not None]
        return json.dumps(history_bundle(pseudonym, stored, now.isoformat())).encode()


def _entry(entry: ReportEntry) -> dict[str, object]:
    return {**entry.model_dump(mode="json"), "band": risk_band(entry.probability)}


def _wants_html(request: Request) -> bool:
    fmt = request.query.get("format")
    return fmt == "html" or (fmt != "json" and "text/html" in request.headers.get("accept", ""))


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _private(response: Response) -> Response:
    response.headers.update(PRIVATE)
    return response
