"""report's questioning page (智能问诊): ``/patients/{pseudonym}/questions/{task}``.

``GET`` shows the patient's latest fused risk for the task and its uncertainty over the inputs the record lacks,
and asks the one missing input whose answer could most change the decision (``questioning.assess``), in the
deployment's languages; ``?format=json`` gives the same as data. ``POST`` takes an answer: "unknown" is kept in the
page's address and never asked again; a value becomes the hospital's record written back to ``ingest.raw``
(``answers.answered_record``), acknowledged by the broker before the page moves on, and the page then waits for
the result the pipeline makes of it (``?awaiting=<record id>``) and asks again — until no missing input could
change the decision.

Reads need ``system/DiagnosticReport.read`` or the patient's signed link; answers need ``system/Bundle.write`` or a
link made with ``can=answer`` (``shared.links``). Every read and every answer is audited before it is answered.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

from services.report import questioning
from services.report.access import refusal
from services.report.answers import (
    Answer,
    answered_record,
    features_of,
    group_key,
    group_of,
    parse_answer,
    recorded_answers,
)
from services.report.inputs import InputGroup, input_groups
from services.report.ports import ModelSource, ReportStore
from services.report.render.html import TEMPLATES
from services.report.routes import Audit, audited
from services.report.view import ReportView
from shared.auth import SCOPE_SUBMIT
from shared.http import Refused, Request, Response
from shared.links import signed_query
from shared.ports import RawDocuments
from shared.pseudonyms import patient_reference
from shared.schemas.models import ModelRef
from shared.schemas.predictions import FusionMethod
from shared.submissions import submission_headers
from shared.tasks import TaskSpec
from shared.topics import derived_event_id

UI = {
    "en": {
        "title": "Questions for a better-informed result",
        "risk": "Fused risk now",
        "plausible": "plausible range over the missing inputs",
        "could_change": "share of plausible values of the missing inputs that would change the decision",
        "ask": "Next question",
        "why": "Knowing it would change the decision for {share} of its plausible values.",
        "unknown": "Unknown",
        "send": "Answer",
        "done": "No more questions",
        "waiting": "Answer sent. Waiting for the updated result from the pipeline…",
        "missing": "Still missing",
        "recorded": "Recorded",
        "timeline": "Back to the timeline",
        "read_only": "This link may read only; ask for a link that may answer to answer here.",
        "threshold": "decision threshold",
        "changes": "would change the decision",
        "complete": "the record has every input.",
        "all_unknown": "every missing input was answered unknown.",
        "stable": "no missing input could change the decision ({share} of the plausible values decide otherwise).",
    },
    "zh": {
        "title": "补充问诊：让结果更有依据",
        "risk": "当前融合风险",
        "plausible": "缺失项在合理取值下的风险范围",
        "could_change": "缺失项的合理取值中会改变结论的比例",
        "ask": "下一个问题",
        "why": "在其合理取值中，有 {share} 会改变结论。",
        "unknown": "不知道",
        "send": "提交",
        "done": "无需再问",
        "waiting": "已提交。正在等待流水线给出更新后的结果…",
        "missing": "仍缺失",
        "recorded": "已记录",
        "timeline": "返回时间线",
        "read_only": "此链接只能查看；如需回答，请申请可回答的链接。",
        "threshold": "判定阈值",
        "changes": "会改变结论的比例",
        "complete": "记录中已有全部信息。",
        "all_unknown": "所有缺失项都已回答“不知道”。",
        "stable": "任何缺失项都不会改变结论（合理取值中仅 {share} 会得出不同结论）。",
    },
}
JSON_TYPE = "application/json"


@lru_cache(maxsize=1)
def _template() -> Template:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return environment.get_template("questioning.html")


@dataclass(frozen=True)
class Latest:
    view: ReportView
    hospital: str


class QuestioningRoutes:
    def __init__(
        self,
        tasks: dict[str, TaskSpec],
        store: ReportStore,
        models: ModelSource,
        answers: RawDocuments,
        audit: Audit,
        pseudonym_key: bytes,
        languages: tuple[str, ...] = questioning.LANGUAGES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tasks = tasks
        self.store = store
        self.models = models
        self.answers = answers
        self.audit = audit
        self.pseudonym_key = pseudonym_key
        self.languages = languages
        self.clock = clock

    async def page(self, request: Request) -> Response:
        pseudonym, task = self._task(request)
        latest = await self._latest(request, pseudonym, task)
        skipped = _listed(request.query.get("unknown", ""))
        wants_json = request.query.get("format") == "json" or JSON_TYPE in request.headers.get("accept", "")
        awaiting = request.query.get("awaiting")
        return await self._show(request, task, latest, skipped, self._language(request), awaiting, wants_json)

    async def answer(self, request: Request) -> Response:
        """A form post (``input``, ``value``, or ``value=unknown``) or JSON ``{"input": ..., "value": ...}``. A form
        whose answer cannot be taken gets the page again with the reason (422); JSON gets the reason."""
        pseudonym, task = self._task(request)
        assert request.principal is not None
        if not request.principal.allows(SCOPE_SUBMIT):
            raise Refused(403, "insufficient_scope", f"answering needs {SCOPE_SUBMIT} or a link made to answer")
        latest = await self._latest(request, pseudonym, task)
        wants_json = request.headers.get("content-type", "").startswith(JSON_TYPE)
        form = _json_form(request.body) if wants_json else request.form()
        asked, text = form.get("input", ""), form.get("value", "").strip()
        language = form.get("lang") if form.get("lang") in self.languages else self._language(request)
        skipped = _listed(form.get("unknown", ""))

        async def refuse(status: int, reason: str) -> Response:
            if wants_json:
                return Response.json({"error": reason}, status)
            return await self._show(request, task, latest, skipped, language, None, False, (status, reason))

        group = group_of(task, asked)
        if group is None:
            return await refuse(400, f"{task.name} has no input {asked!r}")
        key = questioning.input_id(group)
        back = {"lang": language}
        if text == questioning.UNKNOWN:
            skipped.add(key)
        else:
            try:
                value = parse_answer(group, text)
            except ValueError as why:
                return await refuse(422, str(why))
            if group_key(group) in recorded_answers(task, latest.view.inputs):
                return await refuse(409, f"{group.label} is already recorded; it is not asked again")
            back["awaiting"] = await self._write_back(request, task, latest, pseudonym, group, value)
        back["unknown"] = ",".join(sorted(skipped))
        if wants_json:
            return Response.json({"input": key, **back}, 202)
        query = urlencode({k: v for k, v in back.items() if v})
        signed = signed_query(request)
        location = f"{request.path}?{query}" + (f"&{signed}" if signed else "")
        return Response(b"", 303, headers={"location": location, "cache-control": "no-store"})

    async def _show(
        self,
        request: Request,
        task: TaskSpec,
        latest: Latest,
        skipped: set[str],
        language: str,
        awaiting: str | None,
        wants_json: bool,
        error: tuple[int, str] | None = None,
    ) -> Response:
        """The page (or its data): the latest result, the question, or that the page waits for ``awaiting``."""
        pseudonym = latest.view.patient
        waiting = awaiting is not None and not await asyncio.to_thread(self._arrived, pseudonym, awaiting)
        assessment = await asyncio.to_thread(self._assess, task, latest.view, skipped)
        await audited(self.audit, request, "read", f"Patient/{pseudonym}/questions/{task.name}", pseudonym)
        data = _as_data(task, latest.view, assessment, language, waiting, skipped)
        if wants_json:
            return _private(Response.json(data))
        page = _template().render(
            d=data,
            task=task,
            view=latest.view,
            patient=pseudonym,
            language=language,
            languages=self.languages,
            skipped=",".join(sorted(skipped)),
            signed=signed_query(request),
            can_answer=request.principal is not None and request.principal.allows(SCOPE_SUBMIT),
            timeline=f"/patients/{quote(pseudonym)}",
            here=request.path,
            awaiting=awaiting if waiting else None,
            error=error[1] if error else None,
            t=UI[language],
        )
        status = error[0] if error else 200
        return _private(Response(page.encode(), status, content_type="text/html; charset=utf-8"))

    async def _write_back(
        self, request: Request, task: TaskSpec, latest: Latest, pseudonym: str, group: InputGroup, value: Answer
    ) -> str:
        """The answered record on ``ingest.raw`` as the patient's hospital, acknowledged; the record id ingest will
        give it (what the page waits for)."""
        now = self.clock()
        reference = patient_reference(self.pseudonym_key, latest.hospital, pseudonym)
        record = answered_record(task, latest.view, {group_key(group): value}, reference, now)
        event_id = f"question/{uuid.uuid4()}"
        document = record.model_dump_json(exclude_none=True).encode()
        headers = submission_headers(latest.hospital, event_id, JSON_TYPE, now)
        await audited(  # before the write: no document of the hospital's goes out unaudited
            self.audit,
            request,
            "create",
            f"Patient/{pseudonym}/questions/{task.name}",
            pseudonym,
            description="an answer written back to ingest.raw",
            details={"input": questioning.input_id(group)},
        )
        pending = await self.answers.enqueue(document, headers, latest.hospital)
        if pending is not None:
            await pending
        return derived_event_id("ingest", f"{latest.hospital}/{event_id}", 0)

    def _task(self, request: Request) -> tuple[str, TaskSpec]:
        task = self.tasks.get(request.params["task"])
        if task is None:
            raise Refused(404, "not_found", f"no task {request.params['task']!r}; the tasks are {sorted(self.tasks)}")
        return request.params["pseudonym"], task

    async def _latest(self, request: Request, pseudonym: str, task: TaskSpec) -> Latest:
        entries = [e for e in await asyncio.to_thread(self.store.for_patient, pseudonym) if e.task == task.name]
        view = await asyncio.to_thread(self.store.view, entries[0].report_id) if entries else None
        if view is None:
            raise Refused(404, "not_found", f"patient {pseudonym!r} has no {task.name} result to ask about")
        assert request.principal is not None  # every route has a guard
        reason = refusal(request.principal, view.hospital, request.path)
        if reason is not None:
            raise Refused(403, "access_denied", reason)
        return Latest(view, view.hospital)

    def _arrived(self, pseudonym: str, record_id: str) -> bool:
        return any(e.record_id == record_id for e in self.store.for_patient(pseudonym))

    def _assess(self, task: TaskSpec, view: ReportView, unknown: set[str]) -> questioning.Assessment:
        """The result's models as fuse weighed them for this patient, scoring the inputs the result was made from."""
        served: list[questioning.ServedModel] = []
        sources = []
        for line in view.models:
            ref = ModelRef(task=task.name, site=line.site, version=line.version)
            card, score = self.models.card(ref), self.models.scorer(ref)
            if card is None or score is None:
                continue
            served.append(questioning.ServedModel(ref, line.weight, card.threshold, score))
            sources.append((ref, line.weight, card.distributions))
        if not served:
            raise Refused(503, "temporarily_unavailable", "none of the result's models can be loaded now; try again")
        features = features_of(task, recorded_answers(task, view.inputs))
        return questioning.assess(
            task,
            features,
            served,
            cast(FusionMethod, view.method),
            questioning.distribution_source(sources),
            unknown=frozenset(unknown),
        )

    def _language(self, request: Request) -> str:
        asked = request.query.get("lang") or request.headers.get("accept-language", "")[:2]
        return asked if asked in self.languages else self.languages[0]


def _listed(text: str) -> set[str]:
    return {part for part in text.split(",") if part}


def _json_form(body: bytes) -> dict[str, str]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise Refused(400, "invalid_request", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise Refused(400, "invalid_request", 'send an object: {"input": ..., "value": ...}')
    return {k: str(v) for k, v in payload.items() if v is not None}


def _private(response: Response) -> Response:
    response.headers["cache-control"] = "private, no-store"
    return response


def _as_data(
    task: TaskSpec,
    view: ReportView,
    assessment: questioning.Assessment,
    language: str,
    waiting: bool,
    skipped: set[str],
) -> dict[str, Any]:
    """What the page shows, as data (the JSON answer too)."""
    asked = assessment.next_question
    top = assessment.ranked[0] if asked is not None else None
    question = None
    if asked is not None and top is not None:
        question = {
            "input": asked.input,
            "label": asked.label,
            "text": asked.text.get(language, asked.text["en"]),
            "options": [{"value": o.value, "text": o.text.get(language, o.text["en"])} for o in asked.options],
            "kind": asked.kind,
            "unit": asked.unit,
            "range": list(asked.range) if asked.range else None,
            "changes_decision": round(top.flip_share, 3),
            "spread": round(top.spread, 3),
        }
    recorded = recorded_answers(task, view.inputs)
    return {
        "task": task.name,
        "report_id": view.report_id,
        "record_id": view.record_id,
        "result_at": view.created_at.isoformat(),
        "probability": round(assessment.probability, 4),
        "label": assessment.label,
        "verdict": view.positive_label if assessment.label else view.negative_label,
        "threshold": round(assessment.threshold, 4),
        "plausible_low": round(assessment.risk_p10, 4),
        "plausible_high": round(assessment.risk_p90, 4),
        "could_change": round(assessment.flip_share, 3),
        "missing": [
            {
                "input": r.question.input,
                "label": r.question.label,
                "changes_decision": round(r.flip_share, 3),
                "spread": round(r.spread, 3),
            }
            for r in assessment.ranked
        ],
        "recorded": [g.label for g in input_groups(task) if group_key(g) in recorded],
        "done": assessment.done,
        "reason": assessment.reason,
        "reason_text": _reason(assessment, language, bool(skipped)),
        "question": question,
        "waiting": waiting,
    }


def _reason(assessment: questioning.Assessment, language: str, asked_unknown: bool) -> str:
    """Why questioning stopped, in the page's language (``Assessment.reason`` is the English one, for the API)."""
    words = UI[language]
    if not assessment.done:
        return ""
    if not assessment.ranked:
        return words["all_unknown"] if asked_unknown else words["complete"]
    return words["stable"].format(share=f"{assessment.flip_share:.0%}")
