"""Questions about a result over HTTP (issue 20, item 3); the answering is ``services.report.result_questions``.

- ``GET /reports/{report_id}/questions?q=...``: the questions page (a form, the answer, the facts it used with links
  to where the report shows them); JSON with ``format=json`` or ``Accept: application/json``. A token of the
  patient's hospital with ``system/DiagnosticReport.read``, or a signed link made for the report (a link opens the
  pages below the one it was made for) or for its patient (``/patients/{pseudonym}/reports/{report_id}/questions``);
- ``POST /reports/{report_id}/questions`` with ``{"question": "...", "language"?: "en"|"zh"}``: the answer as JSON,
  with a token.

Each answer is audited before it goes: a ``read`` of ``DiagnosticReport/{id}`` with the question's intent, never its
text (a question may name the patient or carry other PHI).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast
from urllib.parse import urlencode

from services.report.access import authorize, refusal, under
from services.report.ports import ReportStore
from services.report.render.questions_html import EXAMPLES, render_questions_html
from services.report.result_questions import LANGUAGES, MAX_QUESTION, Answer, Fact, Language, answer, language_of
from services.report.routes import Audit, audited
from services.report.view import ReportView
from shared.http import Request, Response
from shared.links import LINK_PARAMS, signed_query

HTML = "text/html; charset=utf-8"
PRIVATE = {"cache-control": "private, no-store"}


class QuestionRoutes:
    def __init__(self, store: ReportStore, audit: Audit) -> None:
        self.store = store
        self.audit = audit

    async def page(self, request: Request) -> Response:
        """``GET``: the page (or JSON); without ``q`` the page shows the form and example questions."""
        fmt = request.query.get("format") or ("json" if _wants_json(request) else "html")
        if fmt not in ("html", "json"):
            return Response.json({"error": f"unknown format {fmt!r}; use html or json"}, 400)
        question = request.query.get("q", "").strip()
        if len(question) > MAX_QUESTION:
            return Response.json({"error": f"a question has at most {MAX_QUESTION} characters"}, 400)
        if not question and fmt == "json":
            return Response.json({"error": "ask with ?q=<your question>"}, 400)
        default = _language(request.query.get("lang"))
        loaded = await self._load(request)
        if isinstance(loaded, Response):
            return loaded
        view, previous = loaded
        reply = answer(question, view, previous, default) if question else None
        details = {"format": fmt, **({"question_intent": reply.intent} if reply else {})}
        await audited(self.audit, request, "read", f"DiagnosticReport/{view.report_id}", view.patient, details=details)
        if reply is not None and fmt == "json":
            return _private(Response.json(self._body(request, view, reply)))
        language = reply.language if reply else language_of(question, default)
        signed = signed_query(request)
        examples = [(text, self._here(request, text)) for text in EXAMPLES[language]]
        body = render_questions_html(
            view,
            question,
            reply,
            [(f, self._href(request, view, f)) for f in reply.facts] if reply else [],
            action=request.path,
            report_href=f"{_report_path(request)}{'?' + signed if signed else ''}",
            hidden=[(name, request.query[name]) for name in LINK_PARAMS if name in request.query],
            examples=examples,
            language=language,
        )
        return Response(body, content_type=HTML, headers=dict(PRIVATE))

    async def ask(self, request: Request) -> Response:
        """``POST`` ``{"question": ...}``: the answer as JSON."""
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return Response.json({"error": 'the body is not JSON; send {"question": "..."}'}, 400)
        question = payload.get("question") if isinstance(payload, dict) else None
        if not isinstance(question, str) or not question.strip():
            return Response.json({"error": 'send {"question": "..."} with a question'}, 400)
        if len(question) > MAX_QUESTION:
            return Response.json({"error": f"a question has at most {MAX_QUESTION} characters"}, 400)
        language = payload.get("language")
        if language is not None and language not in LANGUAGES:
            return Response.json({"error": f"language: one of {', '.join(LANGUAGES)}"}, 400)
        loaded = await self._load(request)
        if isinstance(loaded, Response):
            return loaded
        view, previous = loaded
        reply = answer(question.strip(), view, previous, _language(language))
        details = {"format": "json", "question_intent": reply.intent}
        await audited(self.audit, request, "read", f"DiagnosticReport/{view.report_id}", view.patient, details=details)
        return _private(Response.json(self._body(request, view, reply)))

    async def _load(self, request: Request) -> tuple[ReportView, ReportView | None] | Response:
        """The report (404, audited, when there is none, or when it is not the named patient's) and the patient's
        previous report of the same task that this principal may read."""
        report_id = request.params["report_id"]
        view = await asyncio.to_thread(self.store.view, report_id)
        of_patient = request.params.get("pseudonym")
        if view is None or (of_patient is not None and view.patient != of_patient):
            await audited(self.audit, request, "read", f"DiagnosticReport/{report_id}", None, "4", "no such report")
            return Response.json({"error": f"no report {report_id!r}"}, 404)
        authorize(request, view.hospital)
        principal = request.principal
        assert principal is not None
        entries = await asyncio.to_thread(self.store.for_patient, view.patient)
        earlier = next(
            (
                e
                for e in entries  # newest first
                if e.task == view.task
                and e.report_id != view.report_id
                and e.created_at < view.created_at
                and refusal(principal, e.hospital, request.path) is None
            ),
            None,
        )
        previous = await asyncio.to_thread(self.store.view, earlier.report_id) if earlier else None
        return view, previous

    def _body(self, request: Request, view: ReportView, reply: Answer) -> dict[str, Any]:
        out = cast(dict[str, Any], reply.model_dump(mode="json"))
        out["facts"] = [{**f.model_dump(mode="json"), "href": self._href(request, view, f)} for f in reply.facts]
        out["report_id"] = view.report_id
        out["report_url"] = f"{_report_path(request)}{'?' + signed_query(request) if signed_query(request) else ''}"
        return out

    def _href(self, request: Request, view: ReportView, fact: Fact) -> str | None:
        """The link to where the report shows ``fact``: this report's page, or the previous report's (beside it);
        ``None`` for a page this request's signed link does not open."""
        path = _report_path(request)
        if fact.report_id != view.report_id:
            path = f"{path.rsplit('/', 1)[0]}/{fact.report_id}"
            principal = request.principal
            if principal is not None and principal.via == "link" and not under(path, principal.resource):
                return None
        signed = signed_query(request)
        if fact.source.startswith("?"):
            query = f"{signed}&{fact.source[1:]}" if signed else fact.source[1:]
            return f"{path}?{query}"
        return f"{path}?{signed}{fact.source}" if signed else f"{path}{fact.source}"

    def _here(self, request: Request, question: str) -> str:
        signed = signed_query(request)
        return f"{request.path}?{signed + '&' if signed else ''}{urlencode({'q': question})}"


def _report_path(request: Request) -> str:
    """The report's page this questions page hangs under (``/reports/{id}`` or ``/patients/{p}/reports/{id}``)."""
    return request.path.removesuffix("/questions")


def _language(value: object) -> Language:
    return cast(Language, value) if value in LANGUAGES else "en"


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _private(response: Response) -> Response:
    response.headers.update(PRIVATE)
    return response
