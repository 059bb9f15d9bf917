"""Questions about a result on real reports (real models scoring UCI records): each intent, in English and Chinese,
answers with the report's own numbers, signed and rounded as the page shows them, and points at the page section
that shows them; a comparison names the changed inputs and the risk change; what the report does not hold is
"I don't know", never a guess."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from services.report.render.html import render_html
from services.report.result_questions import (
    I_DONT_KNOW,
    Answer,
    answer,
    intent_of,
    language_of,
    percent,
    points,
)
from services.report.view import ReportView
from shared.schemas.predictions import FusedPrediction
from shared.settings import Settings
from tests.support.factories.report import fused_for, record_from
from tests.unit.report.conftest import SITES
from tests.unit.report.test_rendering import view_of

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
MONTH = timedelta(days=30)
ANCHORS = {"#result", "#review", "#models", "#drivers", "#not-measured", "#quality", "?format=fhir"}


@pytest.fixture(scope="module")
def swiss(swiss_fused: FusedPrediction, registry_settings: Settings) -> ReportView:
    """Cholesterol recorded as 0 (implausible, treated as missing), major vessels not measured; no review."""
    return view_of(swiss_fused, registry_settings)


@pytest.fixture(scope="module")
def history(registry_settings: Settings) -> tuple[ReportView, ReportView]:
    """Cleveland records 0 and 1 as one patient's two results a month apart (BP 145 -> 160 mmHg, cholesterol
    233 -> 286 mg/dL); the first needs review: its models disagree."""
    first = view_of(fused_for(record_from("cleveland", 0), SITES), registry_settings)
    second = view_of(fused_for(record_from("cleveland", 1), SITES), registry_settings)
    second = second.model_copy(update={"report_id": "r-2", "patient": first.patient, "created_at": WHEN + MONTH})
    return first, second


def pts(delta: float) -> str:
    value = round(delta * 100, 1)
    return "0.0 pts" if value == 0 else f"{value:+.1f} pts"


def zh_pts(delta: float) -> str:
    value = round(delta * 100, 1)
    return "0.0 个百分点" if value == 0 else f"{value:+.1f} 个百分点"


def grounded(reply: Answer, intent: str, language: str = "en") -> Answer:
    assert reply.grounded and reply.intent == intent and reply.language == language, reply
    assert reply.text and reply.facts and set(reply.sources) <= ANCHORS
    assert reply.sources == list(dict.fromkeys(f.source for f in reply.facts))
    assert I_DONT_KNOW["en"] not in reply.text and I_DONT_KNOW["zh"] not in reply.text
    return reply


def test_numbers_are_formatted_as_the_report_page_shows_them() -> None:
    assert percent(0.6413) == "64.1%" and percent(0.05713) == "5.7%"
    assert points(0.0956) == "+9.6 pts" and points(-0.6388) == "-63.9 pts" and points(-0.0004) == "0.0 pts"
    assert points(0.0956, "zh") == "+9.6 个百分点"
    assert language_of("What drove it?") == "en" and language_of("为什么？") == "zh"
    assert language_of("why 为什么") == "zh" and language_of("???", "zh") == "zh"


@pytest.mark.parametrize("question", ["What drove this result?", "Why is the risk so low?", "what factors mattered"])
def test_what_drove_the_result_names_the_top_drivers_in_signed_points_and_the_model(
    swiss: ReportView, question: str
) -> None:
    reply = grounded(answer(question, swiss), "drivers")
    top = sorted(swiss.drivers, key=lambda d: -abs(d.delta))[:3]
    for d in top:
        assert f"{d.label} ({d.value}) {pts(d.delta)}" in reply.text
        assert (d.label, pts(d.delta)) in [(f.label, f.value) for f in reply.facts]
    assert any(d.delta < 0 for d in top) and "-" in pts(top[0].delta)  # Swiss: "not male" lowered the risk
    model = swiss.attribution_model
    assert model is not None and f"occlusion on the {model.site} model {model.version}" in reply.text
    assert f"{swiss.drivers_not_shown} smaller one(s)" in reply.text
    assert reply.sources == ["#drivers"]


@pytest.mark.parametrize("question", ["为什么是这个结果？", "是什么导致了这个结果", "哪些因素驱动了风险"])
def test_what_drove_the_result_in_chinese(swiss: ReportView, question: str) -> None:
    reply = grounded(answer(question, swiss), "drivers", "zh")
    for d in sorted(swiss.drivers, key=lambda d: -abs(d.delta))[:3]:
        assert f"{d.label}（{d.value}）{zh_pts(d.delta)}" in reply.text
    assert swiss.attribution_model is not None and swiss.attribution_model.site in reply.text
    assert "遮挡归因" in reply.text and "pts" not in reply.text


def test_a_report_without_attribution_says_so(swiss: ReportView) -> None:
    bare = swiss.model_copy(update={"drivers": [], "attribution": None, "attribution_model": None})
    reply = grounded(answer("What drove this result?", bare), "drivers")
    assert "no attribution" in reply.text and reply.sources == ["#drivers"]
    assert "没有归因" in answer("为什么是这个结果？", bare).text


def test_the_comparison_names_the_risk_change_the_verdict_and_the_changed_inputs(
    history: tuple[ReportView, ReportView],
) -> None:
    before, after = history
    reply = grounded(answer("How does it compare with the last one?", after, before), "comparison")
    change = pts(after.probability - before.probability)
    assert change != "0.0 pts"
    assert f"({percent(before.probability)}, {before.verdict})" in reply.text
    assert f"the risk is now {percent(after.probability)} ({after.verdict}): {change}." in reply.text
    assert "2026-01-05" in reply.text  # when the previous result was made
    assert "Resting systolic BP 145 mmHg → 160 mmHg" in reply.text
    assert "Cholesterol 233 mg/dL → 286 mg/dL" in reply.text
    assert "Sex " not in reply.text and "Resting ECG" not in reply.text  # the same in both records
    verdict = "The verdict is unchanged." if before.label == after.label else "The verdict changed from"
    assert verdict in reply.text
    assert ("risk change", change) in [(f.label, f.value) for f in reply.facts]
    assert {f.report_id for f in reply.facts} == {before.report_id, after.report_id}
    if before.needs_review and not after.needs_review:
        assert "The previous result needed review; this one does not." in reply.text


def test_the_comparison_in_chinese(history: tuple[ReportView, ReportView]) -> None:
    before, after = history
    for question in ("与上次相比有什么变化？", "和之前的结果比较"):
        reply = grounded(answer(question, after, before), "comparison", "zh")
        assert f"现在的风险为 {percent(after.probability)}" in reply.text
        assert zh_pts(after.probability - before.probability) in reply.text
        assert "Cholesterol 233 mg/dL → 286 mg/dL" in reply.text


def test_without_an_earlier_result_the_comparison_says_there_is_none(swiss: ReportView) -> None:
    reply = grounded(answer("Has it changed since the previous result?", swiss, None), "comparison")
    assert "no earlier result of heart_disease" in reply.text
    assert "没有该患者更早的" in grounded(answer("跟上次比怎么样", swiss, None), "comparison", "zh").text


def test_which_models_disagreed_gives_each_model_against_the_fused_risk_and_the_reasons_verbatim(
    history: tuple[ReportView, ReportView],
) -> None:
    flagged = history[0]
    [reason] = [r for r in flagged.review_reasons if "disagree" in r]
    reply = grounded(answer("Which models disagreed and why?", flagged), "disagreement")
    assert f"The fused risk is {percent(flagged.probability)}" in reply.text
    assert f"agreement {flagged.agreement:.2f}" in reply.text
    for m in flagged.models:
        assert m.auc is not None
        line = f"{m.site} (weight {m.weight:.2f}, AUC {m.auc:.2f}) {percent(m.probability)}, "
        assert line + f"{pts(m.probability - flagged.probability)} from the fused risk" in reply.text
    far = max(flagged.models, key=lambda m: abs(m.probability - flagged.probability))
    assert f"The model furthest from the fused risk is {far.site}" in reply.text
    assert reason in reply.text and ("review reason", reason) in [(f.label, f.value) for f in reply.facts]
    assert "no attribution for the other models" in reply.text  # only what the data has
    assert {"#models", "#review"} <= set(reply.sources)
    zh = grounded(answer("模型之间为什么不一致？", flagged), "disagreement", "zh")
    assert reason in zh.text and f"权重 {flagged.models[0].weight:.2f}" in zh.text


def test_models_that_agree_are_said_to(swiss: ReportView) -> None:
    reply = grounded(answer("Did the models agree?", swiss), "disagreement")
    assert "found no disagreement strong enough to ask for review" in reply.text


def test_why_it_needs_review_quotes_each_reason(history: tuple[ReportView, ReportView], swiss: ReportView) -> None:
    flagged = history[0]
    assert flagged.needs_review and flagged.review_reasons
    reply = grounded(answer("Why does it need review?", flagged), "review")
    assert all(r in reply.text for r in flagged.review_reasons) and reply.sources == ["#review"]
    zh = grounded(answer("为什么需要复核？", flagged), "review", "zh")
    assert "需要临床医生复核" in zh.text and all(r in zh.text for r in flagged.review_reasons)
    calm = grounded(answer("Does this need to be reviewed?", swiss), "review")
    assert "not flagged for review" in calm.text
    assert "没有被标记为需要复核" in answer("需要审核吗", swiss).text


def test_what_was_not_measured_and_the_quality_flags(swiss: ReportView) -> None:
    reply = grounded(answer("What was not measured?", swiss), "not_measured")
    assert "Not measured for this result: Cholesterol; Major vessels." in reply.text
    assert reply.sources == ["#not-measured"]
    zh = grounded(answer("缺失了哪些数据？", swiss), "not_measured", "zh")
    assert "Cholesterol；Major vessels" in zh.text
    flags = grounded(answer("Are there any data quality flags?", swiss), "quality")
    assert all(f.detail in flags.text for f in swiss.quality_flags) and flags.sources == ["#quality"]
    assert "cholesterol outside the plausible range 70–700 mg/dL" in flags.text
    zh_flags = grounded(answer("数据质量有问题吗？", swiss), "quality", "zh")
    assert all(f.detail in zh_flags.text for f in swiss.quality_flags)


def test_a_record_with_everything_measured_and_clean(history: tuple[ReportView, ReportView]) -> None:
    full = history[1].model_copy(update={"quality_flags": []})
    assert full.not_measured == []
    assert "Every input of the task was recorded" in answer("Which inputs are missing?", full).text
    assert "no data-quality flags" in answer("What about the data quality?", full).text


@pytest.mark.parametrize(
    ("question", "language"),
    [("What was the cholesterol?", "en"), ("cholesterol level?", "en"), ("胆固醇是多少？", "zh")],
)
def test_an_input_s_value_with_the_previous_one(
    history: tuple[ReportView, ReportView], question: str, language: str
) -> None:
    before, after = history
    reply = grounded(answer(question, after, before), "input_value", language)
    assert "286 mg/dL" in reply.text and "233 mg/dL" in reply.text
    assert ("Cholesterol", "286 mg/dL") in [(f.label, f.value) for f in reply.facts]


def test_an_input_among_the_drivers_gives_its_influence(swiss: ReportView) -> None:
    [bp] = [d for d in swiss.drivers if d.label == "Resting systolic BP"]
    for question in ("What was the blood pressure?", "what was her BP", "血压是多少"):
        reply = grounded(answer(question, swiss), "input_value", language_of(question))
        assert bp.value in reply.text and (pts(bp.delta) in reply.text or zh_pts(bp.delta) in reply.text)
        assert "#drivers" in reply.sources


def test_a_value_the_report_lacks_is_said_not_measured_with_its_quality_flag(swiss: ReportView) -> None:
    reply = grounded(answer("What was the cholesterol?", swiss), "input_value")
    assert "Cholesterol was not measured for this result" in reply.text
    assert "cholesterol outside the plausible range 70–700 mg/dL; treated as missing" in reply.text
    assert reply.sources[0] == "#not-measured" and "#quality" in reply.sources
    zh = grounded(answer("主要血管数是多少？", swiss), "input_value", "zh")
    assert "这次结果未测量 Major vessels" in zh.text


@pytest.mark.parametrize(
    "question",
    [
        "What medication should she take?",
        "Will he die?",
        "What treatment do you recommend for his cholesterol?",
        "What's the weather like?",
        "What was the HbA1c?",
        "",
        "她应该吃什么药？",
        "他会死吗？",
        "今天天气怎么样",
    ],
)
def test_what_the_report_does_not_hold_is_i_don_t_know(swiss: ReportView, question: str) -> None:
    reply = answer(question, swiss)
    assert not reply.grounded and reply.intent == "unknown" and reply.facts == [] and reply.sources == []
    language = language_of(question)
    assert reply.text.startswith(I_DONT_KNOW[language]) and reply.language == language
    assert ("clinician" if language == "en" else "临床医生") in reply.text
    assert not re.search(r"\d+(\.\d+)?%", reply.text)  # no number at all: nothing is guessed


def test_the_most_specific_intent_wins() -> None:
    assert intent_of("Why does it need review?") == "review"
    assert intent_of("Why did the models disagree?") == "disagreement"
    assert intent_of("Why did the risk change since last time?") == "comparison"
    assert intent_of("What is the risk?") == "result"
    assert intent_of("为什么模型不一致") == "disagreement" and intent_of("为什么需要复核") == "review"


def test_the_fused_result(swiss: ReportView) -> None:
    reply = grounded(answer("What is the risk?", swiss), "result")
    assert f"is {percent(swiss.probability)} ({swiss.verdict})" in reply.text
    assert f"{percent(swiss.probability)}（{swiss.verdict}）" in answer("风险是多少？", swiss).text


def test_every_source_is_an_id_of_the_report_page(history: tuple[ReportView, ReportView], swiss: ReportView) -> None:
    questions = ["What drove it?", "Which models disagreed?", "Why review?", "What changed since last time?"]
    for view, previous in ((history[0], None), (history[1], history[0]), (swiss, None)):
        page = render_html(view).decode()
        assert f'href="{view.report_id}/questions"' in page  # "Ask about this result"
        for question in [*questions, "What was not measured?", "Any quality flags?"]:
            for fact in answer(question, view, previous).facts:
                if fact.report_id == view.report_id and fact.source.startswith("#"):
                    assert f'id="{fact.source[1:]}"' in page, (question, fact)
