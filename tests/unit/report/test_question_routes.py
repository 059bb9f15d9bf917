"""The questions routes behind the gate with real tokens and signed links, on a store of real reports (one Cleveland
patient's two results a month apart) and a recording audit: the patient's hospital asks, another hospital is 403,
each answer audited with its intent and never the question's text, JSON and HTML answers, a signed link's page and
links keep its signature."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from services.report.question_routes import QuestionRoutes
from services.report.result_questions import I_DONT_KNOW
from services.report.routes import ReportRoutes
from shared.access import refusal_event
from shared.auth import SCOPE_REPORTS, Gate, Principal, refusal_response
from shared.http import HttpApp, Refused, Request, Response
from shared.links import LinkSigner
from shared.metrics import ServiceMetrics
from shared.settings import Settings
from shared.tasks import load_tasks
from tests.support.factories.report import fused_for, record_from
from tests.support.fakes import RecordingAudit
from tests.support.identity import local_identity
from tests.unit.report.conftest import SITES

BASE = "http://report.test"
WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
MONTH = timedelta(days=30)
QUESTION = "What drove this result for Mrs Example?"  # a name in the question: it must never reach the audit
CLEVELAND = Principal(client_id="cleveland-backend", hospital="cleveland", scopes=frozenset({SCOPE_REPORTS}))


class Edge:
    """The report page and the questions routes as ``app.py`` wires them, the audit kept here."""

    def __init__(self, settings: Settings) -> None:
        store = FileReportStore.under(settings)
        reporter = Reporter(
            load_tasks(), RegistryModels(settings), store, ReportMetrics(ServiceMetrics("report").registry), BASE
        )
        first, second = record_from("cleveland", 0), record_from("cleveland", 1)
        self.patient = first.record.patient
        self.old = reporter.report(fused_for(first, SITES), WHEN).report_id
        later = fused_for(second, SITES).model_copy(update={"patient": self.patient})
        self.new = reporter.report(later, WHEN + MONTH).report_id
        self.store = store
        self.audit = RecordingAudit()
        self.links = LinkSigner(b"unit-link-key-0123456789abcdef", 10**9)
        gate = Gate(local_identity().verifier(), self.links)
        report_or_link, token = gate.scoped_or_link(SCOPE_REPORTS), gate.scoped(SCOPE_REPORTS)
        reports = ReportRoutes(store, reporter.pdf, self.audit, self.links, BASE)
        questions = QuestionRoutes(store, self.audit)
        self.http = HttpApp(None)  # type: ignore[arg-type]  # no broker in a unit test
        self.http.refused = self.refused
        self.http.get("/reports/{report_id}", reports.report, guard=report_or_link)
        self.http.get("/patients/{pseudonym}/reports/{report_id}", reports.report, guard=report_or_link)
        self.http.get("/reports/{report_id}/questions", questions.page, guard=report_or_link)
        self.http.post("/reports/{report_id}/questions", questions.ask, guard=token)
        self.http.get("/patients/{pseudonym}/reports/{report_id}/questions", questions.page, guard=report_or_link)
        self.http.post("/patients/{pseudonym}/reports/{report_id}/questions", questions.ask, guard=token)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(self.http), base_url=BASE)

    async def refused(self, request: Request, refused: Refused) -> Response:
        with contextlib.suppress(ConnectionError):
            await self.audit(refusal_event("report", request, refused))
        return refusal_response(request, refused)

    @property
    def reads(self) -> list:
        return [e for e in self.audit.events if e.outcome == "0"]


@pytest.fixture
async def edge(fresh_settings: Settings):
    made = Edge(fresh_settings)
    yield made
    await made.client.aclose()


def as_(hospital: str | None) -> dict[str, str]:
    return local_identity().headers(hospital, None)


def details(event) -> dict[str, str]:
    return {d.type: d.valueString for d in event.entity[0].detail}


async def test_the_page_answers_with_the_facts_and_links_into_the_report_audited_with_the_intent(edge: Edge) -> None:
    path = f"/reports/{edge.new}/questions"
    page = await edge.client.get(path, params={"q": QUESTION}, headers={**as_("cleveland"), "accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "private, no-store"
    html = page.text
    assert '<form id="ask" method="get"' in html and 'name="q"' in html and 'type="hidden"' not in html
    assert '<section id="answer" data-grounded="true" data-intent="drivers"' in html
    view = edge.store.view(edge.new)
    assert view is not None
    top = max(view.drivers, key=lambda d: abs(d.delta))
    assert f"{top.label} ({top.value}) {round(top.delta * 100, 1):+.1f} pts" in unescape(html)
    assert f'href="/reports/{edge.new}#drivers"' in html and f'href="/reports/{edge.new}"' in html
    assert "@media (max-width: 640px)" in html and "<script" not in html and "http" not in html.split("<body>")[1]
    [read] = edge.audit.events
    assert read.outcome == "0" and read.subtype[0].code == "read"
    assert read.entity[0].what.reference == f"DiagnosticReport/{edge.new}"
    assert details(read)["question_intent"] == "drivers" and details(read)["format"] == "html"
    dumped = read.model_dump_json()
    assert "Mrs Example" not in dumped and "drove" not in dumped  # the question's text is never audited


async def test_json_by_format_or_accept_and_by_post(edge: Edge) -> None:
    path = f"/reports/{edge.new}/questions"
    by_format = await edge.client.get(
        path, params={"q": "How does it compare with the last one?", "format": "json"}, headers=as_("cleveland")
    )
    by_accept = await edge.client.get(
        path,
        params={"q": "How does it compare with the last one?"},
        headers={**as_("cleveland"), "accept": "application/json"},
    )
    posted = await edge.client.post(
        path, json={"question": "How does it compare with the last one?"}, headers=as_("cleveland")
    )
    old, new = edge.store.view(edge.old), edge.store.view(edge.new)
    assert old is not None and new is not None
    change = f"{round((new.probability - old.probability) * 100, 1):+.1f} pts"
    for response in (by_format, by_accept, posted):
        assert response.status_code == 200 and response.headers["cache-control"] == "private, no-store"
        body = response.json()
        assert body["grounded"] is True and body["intent"] == "comparison" and body["report_id"] == edge.new
        assert change in body["text"] and "Cholesterol 233 mg/dL → 286 mg/dL" in body["text"]
        hrefs = {f["href"] for f in body["facts"]}
        assert f"/reports/{edge.new}#result" in hrefs and f"/reports/{edge.old}#result" in hrefs  # the previous one
    assert [details(e)["question_intent"] for e in edge.reads] == ["comparison"] * 3
    assert [details(e)["format"] for e in edge.reads] == ["json"] * 3
    zh = await edge.client.post(path, json={"question": "为什么需要复核？"}, headers=as_("cleveland"))
    assert zh.json()["language"] == "zh" and zh.json()["intent"] == "review"


async def test_another_hospital_is_403_and_nothing_is_answered_or_read(edge: Edge) -> None:
    path = f"/reports/{edge.new}/questions"
    got = await edge.client.get(path, params={"q": QUESTION}, headers=as_("hungary"))
    assert got.status_code == 403 and "another hospital" in got.json()["error_description"]
    posted = await edge.client.post(path, json={"question": QUESTION}, headers=as_("hungary"))
    assert posted.status_code == 403
    assert (await edge.client.post(path, json={"question": QUESTION}, headers=as_(None))).status_code == 403
    assert (await edge.client.get(path, params={"q": QUESTION})).status_code == 401
    assert edge.reads == [] and all(e.outcome == "4" for e in edge.audit.events)
    assert all("Mrs Example" not in e.model_dump_json() for e in edge.audit.events)


async def test_a_question_it_cannot_ground_is_i_don_t_know_and_where_to_look(edge: Edge) -> None:
    path = f"/reports/{edge.new}/questions"
    page = await edge.client.get(path, params={"q": "What medication should he take?"}, headers=as_("cleveland"))
    assert '<section id="answer" data-grounded="false" data-intent="unknown"' in page.text
    assert I_DONT_KNOW["en"] in unescape(page.text) and "Open the full report" in page.text
    zh = await edge.client.get(path, params={"q": "他会死吗？"}, headers=as_("cleveland"))
    assert I_DONT_KNOW["zh"] in zh.text and '<html lang="zh">' in zh.text
    assert [details(e)["question_intent"] for e in edge.reads] == ["unknown", "unknown"]


async def test_bad_requests_and_unknown_reports(edge: Edge) -> None:
    path = f"/reports/{edge.new}/questions"
    empty = await edge.client.get(path, headers={**as_("cleveland"), "accept": "text/html"})
    assert empty.status_code == 200 and 'id="answer"' not in empty.text and "What drove this result?" in empty.text
    assert "question_intent" not in details(edge.audit.events[-1])
    assert (await edge.client.get(path, params={"format": "json"}, headers=as_("cleveland"))).status_code == 400
    assert (await edge.client.get(path, params={"q": "x" * 501}, headers=as_("cleveland"))).status_code == 400
    assert (
        await edge.client.get(path, params={"q": "why", "format": "xml"}, headers=as_("cleveland"))
    ).status_code == 400
    for body in (b"not json", b"[]", b'{"question": ""}', b'{"question": "why", "language": "fr"}'):
        assert (await edge.client.post(path, content=body, headers=as_("cleveland"))).status_code == 400
    missing = await edge.client.get("/reports/nope/questions", params={"q": "why"}, headers=as_("cleveland"))
    assert missing.status_code == 404 and edge.audit.events[-1].outcome == "4"
    elsewhere = f"/patients/someone-else/reports/{edge.new}/questions"
    assert (await edge.client.get(elsewhere, params={"q": "why"}, headers=as_("cleveland"))).status_code == 404


async def test_a_report_s_signed_link_opens_its_questions_and_keeps_its_signature(edge: Edge) -> None:
    path, _ = edge.links.sign(f"/reports/{edge.new}", CLEVELAND, WHEN.timestamp())
    query = urlsplit(path).query
    report = await edge.client.get(path, headers={"accept": "text/html"})
    assert report.status_code == 200
    ask = f'href="{edge.new}/questions?{query.replace("&", "&amp;")}"'
    assert ask in report.text  # the report's "Ask about this result" keeps the link's parameters
    followed = f"/reports/{edge.new}/questions?{query}"  # where the browser resolves the relative link
    page = await edge.client.get(f"{followed}&q={quote('How does it compare with the last one?')}")
    assert page.status_code == 200 and 'data-grounded="true"' in page.text
    for name, value in parse_qsl(query):  # the form keeps the link's parameters, so asking again still opens
        assert f'<input type="hidden" name="{name}" value="{value}">' in page.text
    assert f'href="/reports/{edge.new}?{query.replace("&", "&amp;")}#result"' in page.text
    assert f"/reports/{edge.old}" not in page.text  # the previous report is not a page this link opens
    assert f"{query.replace('&', '&amp;')}&amp;q=" in page.text  # the example questions keep it too
    other = await edge.client.get(f"/reports/{edge.old}/questions?{query}&q=why")
    assert other.status_code == 401
    assert [e.agent[0].policy[0].split(":")[2] for e in edge.reads] == ["link", "link"]
    assert (
        await edge.client.post(f"/reports/{edge.new}/questions?{query}", json={"question": "why"})
    ).status_code == 401


async def test_a_patient_s_signed_link_opens_the_questions_of_each_of_its_reports(edge: Edge) -> None:
    path, _ = edge.links.sign(f"/patients/{edge.patient}", CLEVELAND, WHEN.timestamp())
    query = urlsplit(path).query
    report = await edge.client.get(f"/patients/{edge.patient}/reports/{edge.new}?{query}")
    assert f'href="{edge.new}/questions?{query.replace("&", "&amp;")}"' in report.text
    page = await edge.client.get(
        f"/patients/{edge.patient}/reports/{edge.new}/questions?{query}&q={quote('What changed since last time?')}"
    )
    assert page.status_code == 200
    # Both reports are the patient's pages: the previous one's facts link to it, with the signature.
    assert f'href="/patients/{edge.patient}/reports/{edge.old}?{query.replace("&", "&amp;")}#result"' in page.text
    as_json = json.loads(
        (
            await edge.client.get(
                f"/patients/{edge.patient}/reports/{edge.new}/questions?{query}&format=json&q=what+was+not+measured"
            )
        ).content
    )
    assert as_json["intent"] == "not_measured" and as_json["report_url"].endswith(query)
