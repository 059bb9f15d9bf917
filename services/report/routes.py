"""report's HTTP entrypoint, every route behind a token or a signed link and every read audited:

- ``GET /reports/{report_id}`` (HTML, ``?format=pdf``, ``?format=fhir``): a token of the patient's hospital with
  ``system/DiagnosticReport.read``, or a signed link made for that report;
- ``GET /patients/{pseudonym}/reports/{report_id}``: the same report as a page of its patient's, which the patient's
  signed link opens (the timeline links to its reports so);
- ``POST /reports/{report_id}/link``: a signed link for browsers (``shared.links``), with the same token;
- ``GET /patients/{pseudonym}/reports``: the patient's reports, newest first, with the same token;
- ``POST /patients/{pseudonym}/link``: a signed link to the patient's pages (``?answer=true``: one that may answer
  the questioning page, for a client granted ``system/Bundle.write``);
- ``GET /fhir/RiskAssessment/{report_id}``: the report's RiskAssessment (what a rest-hook notification's ``focus``
  names), with a token of the patient's hospital granting ``system/RiskAssessment.read``.

The PDF is rendered on first request (``pdf``: report id -> bytes, ``Reporter.pdf``), off the event loop like every
file read. A read is answered only after its audit event was acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from services.report.access import authorize
from services.report.ports import ReportStore
from shared.access import Interaction, rest_event
from shared.auth import Principal
from shared.http import Refused, Request, Response
from shared.links import LINK_PARAMS, LinkSigner
from shared.schemas.audit import AccessEvent

CONTENT_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "fhir": "application/fhir+json"}
Audit = Callable[[AccessEvent], Awaitable[None]]


class ReportRoutes:
    def __init__(
        self,
        store: ReportStore,
        pdf: Callable[[str], bytes | None],
        audit: Audit,
        links: LinkSigner,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.pdf = pdf
        self.audit = audit
        self.links = links
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    async def report(self, request: Request) -> Response:
        report_id = request.params["report_id"]
        fmt = request.query.get("format", "html")
        if fmt not in CONTENT_TYPES:
            return Response.json({"error": f"unknown format {fmt!r}; use html, pdf or fhir"}, 400)
        resource = f"DiagnosticReport/{report_id}"
        view = await asyncio.to_thread(self.store.view, report_id)
        of_patient = request.params.get("pseudonym")
        if view is None or (of_patient is not None and view.patient != of_patient):
            await self._audited(request, "read", resource, None, "4", "no such report")
            return Response.json({"error": f"no report {report_id!r}"}, 404)
        authorize(request, view.hospital)
        if fmt == "pdf":
            body = await asyncio.to_thread(self.pdf, report_id)
        else:
            body = await asyncio.to_thread(self.store.read, report_id, fmt)
        if body is None:
            return Response.json({"error": f"no report {report_id!r}"}, 404)
        await self._audited(request, "read", resource, view.patient, details={"format": fmt})
        if fmt == "html" and request.principal is not None and request.principal.via == "link":
            body = _links_keep_signature(body, request)
        headers = {"content-disposition": f'inline; filename="report-{report_id}.pdf"'} if fmt == "pdf" else {}
        headers["cache-control"] = "private, no-store"
        return Response(body, content_type=CONTENT_TYPES[fmt], headers=headers)

    async def link(self, request: Request) -> Response:
        """A link to the report a browser can open without a token, valid for ``AIMASS_LINK_TTL_SECONDS``."""
        report_id = request.params["report_id"]
        view = await asyncio.to_thread(self.store.view, report_id)
        if view is None:
            return Response.json({"error": f"no report {report_id!r}"}, 404)
        authorize(request, view.hospital)
        assert request.principal is not None
        path, expires = self.links.sign(f"/reports/{report_id}", request.principal, self.clock())
        await self._audited(
            request, "create", f"DiagnosticReport/{report_id}", view.patient, description="signed link issued"
        )
        return Response.json({"url": f"{self.base_url}{path}", "expires_at": expires}, 201)

    async def patient_link(self, request: Request) -> Response:
        """A link to the patient's timeline and the pages below it (questioning, questions), for a browser;
        ``?answer=true`` also lets it answer the questioning page's questions, for a client that may write the
        hospital's documents (``system/Bundle.write``)."""
        pseudonym = request.params["pseudonym"]
        entries = await asyncio.to_thread(self.store.for_patient, pseudonym)
        if not entries:
            return Response.json({"error": f"no reports of patient {pseudonym!r}"}, 404)
        for hospital in {entry.hospital for entry in entries}:
            authorize(request, hospital)
        assert request.principal is not None
        answer = request.query.get("answer", "false").lower() in ("1", "true", "yes")
        try:
            path, expires = self.links.sign(f"/patients/{pseudonym}", request.principal, self.clock(), answer)
        except ValueError as why:
            raise Refused(403, "insufficient_scope", str(why)) from None
        await self._audited(request, "create", f"Patient/{pseudonym}", pseudonym, description="signed link issued")
        return Response.json({"url": f"{self.base_url}{path}", "expires_at": expires}, 201)

    async def risk_assessment(self, request: Request) -> Response:
        """``GET /fhir/RiskAssessment/{id}``: the RiskAssessment a notification's ``focus`` names (its id is the
        report id), with a token of the patient's hospital granting ``system/RiskAssessment.read``."""
        report_id = request.params["report_id"]
        view = await asyncio.to_thread(self.store.view, report_id)
        bundle = await asyncio.to_thread(self.store.read, report_id, "fhir") if view is not None else None
        if view is None or bundle is None:
            return Response.json(_not_found(report_id), 404, CONTENT_TYPES["fhir"])
        authorize(request, view.hospital)
        [resource] = [
            e["resource"] for e in json.loads(bundle)["entry"] if e["resource"]["resourceType"] == "RiskAssessment"
        ]
        await self._audited(request, "read", f"RiskAssessment/{report_id}", view.patient)
        response = Response.json(resource, 200, CONTENT_TYPES["fhir"])
        response.headers["cache-control"] = "private, no-store"
        return response

    async def patient_reports(self, request: Request) -> Response:
        pseudonym = request.params["pseudonym"]
        entries = await asyncio.to_thread(self.store.for_patient, pseudonym)
        for hospital in {entry.hospital for entry in entries}:
            authorize(request, hospital)
        await self._audited(request, "search-type", f"Patient/{pseudonym}/reports", pseudonym)
        return Response.json({"patient": pseudonym, "reports": [e.model_dump(mode="json") for e in entries]})

    async def _audited(
        self,
        request: Request,
        interaction: Interaction,
        resource: str,
        patient: str | None,
        outcome: str = "0",
        description: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        await audited(self.audit, request, interaction, resource, patient, outcome, description, details)


async def audited(
    audit: Audit,
    request: Request,
    interaction: Interaction,
    resource: str,
    patient: str | None,
    outcome: str = "0",
    description: str | None = None,
    details: dict[str, str] | None = None,
) -> None:
    """Audit the access and wait for the broker; ``Refused`` (503) when it cannot be: no access goes unaudited."""
    principal: Principal | None = request.principal
    event = rest_event(
        "report",
        request,
        principal,
        interaction,
        resource=resource,
        patient=patient,
        outcome=outcome,  # type: ignore[arg-type]
        description=description,
        details=details,
    )
    try:
        await audit(event)
    except Exception:
        raise Refused(503, "temporarily_unavailable", "the access cannot be audited now; try again") from None


def _not_found(report_id: str) -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": f"no RiskAssessment {report_id!r}"}],
    }


def _links_keep_signature(html: bytes, request: Request) -> bytes:
    """The report's own links to its PDF and FHIR forms and to its questions page carry the signed link's
    parameters, so a browser that opened the report from a link can follow them (a link opens the pages below the
    one it was made for: ``/reports/{id}/questions``)."""
    signed = urlencode({name: request.query[name] for name in LINK_PARAMS if name in request.query})
    escaped = signed.replace("&", "&amp;")
    questions = f'href="{request.params["report_id"]}/questions"'
    html = html.replace(questions.encode(), f'{questions[:-1]}?{escaped}"'.encode())
    return html.replace(b'href="?format=', f'href="?{escaped}&amp;format='.encode())
