"""The questioning routes behind the gate with real tokens and signed links, on a store with a real Hungarian
patient's result (no ST slope, major vessels or thallium scan recorded) scored by real models: what the page asks
and shows, who may answer, the answer written back as the hospital's document, "unknown" never asked again, waiting
for the pipeline's result, the Chinese page, and the audit of every read and answer."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from services.report.questioning_routes import QuestioningRoutes
from shared.access import refusal_event
from shared.auth import SCOPE_REPORTS, SCOPE_SUBMIT, Gate, Principal, refusal_response
from shared.http import HttpApp, Refused, Request, Response
from shared.links import LinkSigner
from shared.metrics import ServiceMetrics
from shared.pseudonyms import referenced_patient
from shared.schemas.records import IncomingRecord
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import CE_ID, CE_SOURCE, derived_event_id
from tests.support.factories.report import fused_for, record_from
from tests.support.fakes import RecordingAudit, RecordingRaw
from tests.support.identity import local_identity
from tests.unit.report.conftest import SITES

BASE = "http://report.test"
WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
ANSWERED_AT = datetime(2026, 1, 6, 8, 0, tzinfo=UTC)
KEY = b"unit-pseudonym-key-0123456789abcdef"
TASK = "heart_disease"
READ_AND_WRITE = f"{SCOPE_REPORTS} {SCOPE_SUBMIT}"


class Edge:
    """The questioning routes as ``app.py`` wires them, on one Hungarian patient's result."""

    def __init__(self, settings: Settings) -> None:
        self.store = FileReportStore.under(settings)
        self.reporter = Reporter(
            load_tasks(), RegistryModels(settings), self.store, ReportMetrics(ServiceMetrics("report").registry), BASE
        )
        self.record = next(
            r for r in (record_from("hungary", i) for i in range(40)) if sum(v is None for v in r.features) >= 8
        )
        self.patient = self.record.record.patient
        self.report = self.reporter.report(fused_for(self.record, SITES), WHEN).report_id
        self.audit = RecordingAudit()
        self.raw = RecordingRaw()
        self.links = LinkSigner(b"unit-link-key-0123456789abcdef", 10**9)
        gate = Gate(local_identity().verifier(), self.links)
        routes = QuestioningRoutes(
            load_tasks(), self.store, RegistryModels(settings), self.raw, self.audit, KEY, clock=lambda: ANSWERED_AT
        )
        pages = gate.scoped_or_link(SCOPE_REPORTS)
        self.http = HttpApp(None)  # type: ignore[arg-type]  # no broker in a unit test
        self.http.refused = self.refused
        self.http.get("/patients/{pseudonym}/questions/{task}", routes.page, guard=pages)
        self.http.post("/patients/{pseudonym}/questions/{task}", routes.answer, guard=pages)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(self.http), base_url=BASE)
        self.path = f"/patients/{self.patient}/questions/{TASK}"

    async def refused(self, request: Request, refused: Refused) -> Response:
        with contextlib.suppress(ConnectionError):
            await self.audit(refusal_event("report", request, refused))
        return refusal_response(request, refused)

    async def data(self, hospital: str = "hungary", **query: str) -> dict:
        page = await self.client.get(self.path, params={"format": "json", **query}, headers=as_(hospital))
        assert page.status_code == 200, page.text
        return page.json()

    def link(self, answer: bool) -> str:
        scopes = frozenset({SCOPE_REPORTS, SCOPE_SUBMIT})
        principal = Principal(client_id="hungary-backend", hospital="hungary", scopes=scopes)
        path, _ = self.links.sign(f"/patients/{self.patient}", principal, time.time(), answer)
        return urlsplit(path).query


@pytest.fixture
async def edge(fresh_settings: Settings):
    made = Edge(fresh_settings)
    yield made
    await made.client.aclose()


def as_(hospital: str | None, scope: str | None = None) -> dict[str, str]:
    return local_identity().headers(hospital, scope)


async def test_the_page_asks_a_missing_input_and_shows_the_result_now_with_its_uncertainty(edge: Edge) -> None:
    data = await edge.data()
    view = edge.store.view(edge.report)
    assert view is not None
    assert data["report_id"] == edge.report
    # The page scores the result's own recorded inputs with the result's models: the risk the pipeline published.
    assert data["probability"] == pytest.approx(view.probability, abs=1e-3)
    assert 0 <= data["plausible_low"] <= data["plausible_high"] <= 1 and 0 < data["could_change"] <= 1
    missing = {m["input"] for m in data["missing"]}
    assert {"major_vessels", "st_slope_upsloping", "thallium_normal"} & missing
    assert not set(data["recorded"]) & {m["label"] for m in data["missing"]}, "never asks what the record has"
    assert not data["done"], data["reason"]
    question = data["question"]
    assert question["input"] == data["missing"][0]["input"]
    assert question["text"] and question["options"][-1]["value"] == "unknown"
    shares = [m["changes_decision"] for m in data["missing"]]
    assert shares == sorted(shares, reverse=True), "the most decision-changing input first"
    [read] = edge.audit.events
    assert read.outcome == "0" and read.subtype[0].code == "read"


async def test_another_hospital_is_refused_and_an_unknown_task_is_404(edge: Edge) -> None:
    refused = await edge.client.get(edge.path, headers=as_("cleveland"))
    assert refused.status_code == 403
    assert [e.outcome for e in edge.audit.events] == ["4"]
    missing = await edge.client.get(f"/patients/{edge.patient}/questions/no_such_task", headers=as_("hungary"))
    assert missing.status_code == 404 and "heart_disease" in missing.text


async def test_an_answer_is_written_back_as_the_hospitals_document_and_the_page_waits_for_its_result(
    edge: Edge,
) -> None:
    question = (await edge.data())["question"]
    assert question is not None, "the patient lacks inputs that could change the decision"
    asked, value = question["input"], _an_answer(question)
    sent = await edge.client.post(
        edge.path, data={"input": asked, "value": value}, headers=as_("hungary", READ_AND_WRITE)
    )
    assert sent.status_code == 303, sent.text
    [(document, headers, key)] = edge.raw.documents
    assert headers[CE_SOURCE] == "hungary" and key == "hungary"
    record = IncomingRecord.model_validate_json(document)
    assert referenced_patient(KEY, "hungary", record.patient_id) == edge.patient
    assert record.recorded_at == ANSWERED_AT
    awaited = derived_event_id("ingest", f"hungary/{headers[CE_ID]}", 0)
    location = urlsplit(sent.headers["location"])
    assert location.path == edge.path and parse_qs(location.query)["awaiting"] == [awaited]
    created = [e for e in edge.audit.events if e.subtype[0].code == "create"]
    assert len(created) == 1 and asked in created[0].model_dump_json()
    assert value not in created[0].model_dump_json().replace(asked, ""), "the answer's value is never audited"

    waiting = await edge.client.get(f"{location.path}?{location.query}", headers=as_("hungary"))
    assert 'id="waiting"' in waiting.text and 'http-equiv="refresh"' in waiting.text
    answered = dataclasses.replace(edge.record, record=edge.record.record.model_copy(update={"record_id": awaited}))
    edge.reporter.report(fused_for(answered, SITES), ANSWERED_AT)
    shown = await edge.client.get(f"{location.path}?{location.query}", headers=as_("hungary"))
    assert 'id="waiting"' not in shown.text and 'id="risk"' in shown.text


def _an_answer(question: dict) -> str:
    """The middle of a numeric input's plausible range, else the first option."""
    if question["kind"] == "numeric":
        low, high = question["range"]
        return str(round((low + high) / 2))
    return str(question["options"][0]["value"])


async def test_unknown_is_kept_in_the_address_and_never_asked_again(edge: Edge) -> None:
    first = await edge.data()
    asked = first["missing"][0]["input"]
    sent = await edge.client.post(
        edge.path, data={"input": asked, "value": "unknown"}, headers=as_("hungary", READ_AND_WRITE)
    )
    assert sent.status_code == 303 and edge.raw.documents == []
    unknown = parse_qs(urlsplit(sent.headers["location"]).query)["unknown"]
    assert unknown == [asked]
    after = await edge.data(unknown=asked)
    assert asked not in {m["input"] for m in after["missing"]}
    assert after["question"] is None or after["question"]["input"] != asked


async def test_answers_a_person_can_act_on_when_refused(edge: Edge) -> None:
    writer = as_("hungary", READ_AND_WRITE)
    reader = await edge.client.post(
        edge.path, data={"input": "major_vessels", "value": "1"}, headers=as_("hungary", SCOPE_REPORTS)
    )
    assert reader.status_code == 403 and SCOPE_SUBMIT in reader.text
    out_of_range = await edge.client.post(edge.path, data={"input": "major_vessels", "value": "9"}, headers=writer)
    assert out_of_range.status_code == 422 and 'id="error"' in out_of_range.text and "outside" in out_of_range.text
    assert 'id="question"' in out_of_range.text, "the form's answer gets the page again, with the reason"
    not_a_number = await edge.client.post(edge.path, json={"input": "major_vessels", "value": "two"}, headers=writer)
    assert not_a_number.status_code == 422 and "a number is needed" in not_a_number.json()["error"]
    recorded = await edge.client.post(edge.path, json={"input": "age", "value": "50"}, headers=writer)
    assert recorded.status_code == 409 and "already recorded" in recorded.json()["error"]
    unknown_input = await edge.client.post(edge.path, json={"input": "shoe_size", "value": "9"}, headers=writer)
    assert unknown_input.status_code == 400 and "shoe_size" in unknown_input.json()["error"]
    assert edge.raw.documents == []


async def test_a_read_only_link_shows_the_question_without_answering_and_an_answer_link_answers(edge: Edge) -> None:
    read_only = edge.link(answer=False)
    page = await edge.client.get(f"{edge.path}?{read_only}")
    assert page.status_code == 200 and 'id="risk"' in page.text and 'id="send"' not in page.text
    refused = await edge.client.post(f"{edge.path}?{read_only}", data={"input": "major_vessels", "value": "1"})
    assert refused.status_code == 403
    may_answer = edge.link(answer=True)
    page = await edge.client.get(f"{edge.path}?{may_answer}")
    data = (await edge.client.get(f"{edge.path}?{may_answer}&format=json")).json()
    if data["question"] is not None:
        assert 'id="send"' in page.text
    answered = await edge.client.post(f"{edge.path}?{may_answer}", data={"input": "major_vessels", "value": "1"})
    assert answered.status_code == 303
    assert "sig=" in answered.headers["location"], "the page it moves to keeps the link"
    assert len(edge.raw.documents) == 1


async def test_the_page_in_chinese(edge: Edge) -> None:
    page = await edge.client.get(edge.path, params={"lang": "zh"}, headers=as_("hungary"))
    assert '<html lang="zh-CN">' in page.text and "当前融合风险" in page.text
    english = await edge.client.get(edge.path, headers={**as_("hungary"), "accept-language": "en-GB"})
    assert '<html lang="en">' in english.text and "Fused risk now" in english.text
    assert json.loads((await edge.client.get(edge.path, params={"format": "json"}, headers=as_("hungary"))).text)


async def test_questioning_stops_when_nothing_is_left_to_ask_and_says_why_in_the_page_language(edge: Edge) -> None:
    unknown: list[str] = []
    for _ in range(len(load_tasks()[TASK].features)):
        data = await edge.data(unknown=",".join(unknown))
        if data["question"] is None:
            break
        unknown.append(data["question"]["input"])
    assert data["done"] and data["question"] is None and unknown, "it asked, then stopped"
    page = await edge.client.get(edge.path, params={"unknown": ",".join(unknown), "lang": "zh"}, headers=as_("hungary"))
    assert 'id="done"' in page.text and 'id="question"' not in page.text
    reason = "所有缺失项都已回答“不知道”" if not data["missing"] else "任何缺失项都不会改变结论"
    assert reason in page.text


async def test_an_answer_that_cannot_be_audited_is_not_written(edge: Edge) -> None:
    edge.audit.failing = True
    sent = await edge.client.post(
        edge.path, data={"input": "major_vessels", "value": "1"}, headers=as_("hungary", READ_AND_WRITE)
    )
    assert sent.status_code == 503 and edge.raw.documents == []
