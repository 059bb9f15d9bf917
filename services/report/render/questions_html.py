"""The questions page of a report (server-rendered HTML, inline CSS, nothing fetched, no script): the question box,
the answer with the facts it used and links to where the report shows them. Usable on a laptop and a tablet."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

from services.report.render.html import TEMPLATES, report_time
from services.report.result_questions import MAX_QUESTION, Answer, Fact, Language
from services.report.view import ReportView

CHROME: dict[Language, dict[str, str]] = {
    "en": {
        "title": "Ask about this result",
        "back": "Back to the report",
        "report": "Report",
        "placeholder": "Ask about this result, e.g. what drove it?",
        "ask": "Ask",
        "try": "Try:",
        "asked": "You asked:",
        "full_report": "Open the full report",
        "facts": "Facts the answer used",
        "fact": "Fact",
        "value": "Value",
        "where": "Shown in the report",
        "previous": "previous report",
        "grounding": "Answers are built only from this report's own data (and the patient's previous report of the "
        'task, to compare), with fixed sentences; a question the report cannot answer gets "I don\'t know".',
    },
    "zh": {
        "title": "询问这份结果",
        "back": "返回报告",
        "report": "报告",
        "placeholder": "关于这份结果的问题，例如：是什么导致了这个结果？",
        "ask": "提问",
        "try": "示例：",
        "asked": "您的问题：",
        "full_report": "打开完整报告",
        "facts": "回答所用的数据",
        "fact": "数据",
        "value": "值",
        "where": "报告中的位置",
        "previous": "上一份报告",
        "grounding": "回答只根据这份报告本身的数据（比较时还有该患者同一任务的上一份报告），用固定的句式写成；"
        "报告无法回答的问题，回答“我不知道”。",
    },
}
EXAMPLES: dict[Language, tuple[str, ...]] = {
    "en": (
        "What drove this result?",
        "How does it compare with the last one?",
        "Which models disagreed and why?",
        "Why does it need review?",
        "What was not measured?",
    ),
    "zh": (
        "为什么是这个结果？",
        "与上次相比有什么变化？",
        "模型之间有分歧吗？",
        "为什么需要复核？",
        "缺失了哪些数据？",
    ),
}


@lru_cache(maxsize=1)
def _template() -> Template:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return environment.get_template("questions.html")


def render_questions_html(
    view: ReportView,
    question: str,
    answer: Answer | None,
    facts: Sequence[tuple[Fact, str | None]],
    *,
    action: str,
    report_href: str,
    hidden: Sequence[tuple[str, str]],
    examples: Sequence[tuple[str, str]],
    language: Language,
) -> bytes:
    """``facts``: each fact with the link to where the report shows it (``None``: a page this visitor cannot
    open); ``hidden``: the signed link's parameters the form keeps; ``examples``: (question, link)."""
    return (
        _template()
        .render(
            v=view,
            time=report_time(view),
            c=CHROME[language],
            lang=language,
            question=question,
            a=answer,
            facts=facts,
            action=action,
            report_href=report_href,
            hidden=hidden,
            examples=examples,
            max_length=MAX_QUESTION,
        )
        .encode()
    )
