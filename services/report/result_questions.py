"""Questions about a result, answered only from the report's own data (pure; issue 20, item 3).

A person asks in their words — "what drove this result?", "how does it compare with the last one?", "为什么需要复核？"
— and gets plain sentences with the report's numbers, each fact with the anchor of the report page section that
shows it. Nothing is generated: the question is matched to an intent by keywords (English and Chinese, a small
synonym table), and every sentence of the answer is a fixed template filled with values of the ``ReportView`` (and,
to compare, the patient's previous report of the task). A question that matches no intent, or that asks for what a
report does not hold (treatment, prognosis ...), is answered "I don't know" with where to look: never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.report.view import InputLine, ReportView
from shared.schemas.records import QualityFlag

Language = Literal["en", "zh"]
Intent = Literal[
    "drivers", "comparison", "disagreement", "review", "not_measured", "quality", "input_value", "result", "unknown"
]
LANGUAGES: tuple[Language, ...] = ("en", "zh")
MAX_QUESTION = 500
TOP_DRIVERS = 3

# The report page's sections (ids in templates/report.html) a fact points at.
RESULT, REVIEW, MODELS, DRIVERS, NOT_MEASURED, QUALITY = (
    "#result",
    "#review",
    "#models",
    "#drivers",
    "#not-measured",
    "#quality",
)
FHIR = "?format=fhir"  # the RiskAssessment's basis cites every recorded input (an input the page may not list)

I_DONT_KNOW: dict[Language, str] = {
    "en": "I don't know — this report does not say.",
    "zh": "我不知道——这份报告中没有这方面的信息。",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Fact(_Model):
    """One value an answer used, and where it is shown: ``source`` is an anchor of the report page (``#drivers``)
    or ``?format=fhir``, in the report ``report_id`` (this one, or the previous one a comparison used)."""

    label: str
    value: str
    source: str
    report_id: str


class Answer(_Model):
    grounded: bool
    intent: Intent
    language: Language
    text: str
    sentences: list[str]
    facts: list[Fact]
    sources: list[str]  # the anchors of the facts, in order, each once


# --- matching ---------------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split("|")) if text else ()


# (intent, strong keywords, weak keywords). English keywords match whole words ("review*" a word's start, a space a
# phrase); Chinese ones match anywhere in the question. A strong keyword counts 2, a weak one 1.
KEYWORDS: tuple[tuple[Intent, tuple[str, ...], tuple[str, ...]], ...] = (
    ("review", _words("review*|flagged|verif*|check*|复核|审核|审查|核查|人工"), _words("flag")),
    (
        "disagreement",
        _words(
            "model|models|disagree*|agree*|consensus|conflict*|weight*|site|sites|auc|模型|分歧|不一致|一致|权重|冲突"
        ),
        _words("differ*"),
    ),
    (
        "comparison",
        _words(
            "compare*|comparison|last|previous*|before|earlier|prior|since|trend|changed|change|changes|better|worse"
            "|improv*|上次|上一次|前一次|比较|对比|变化|之前|以前|改变|好转|恶化|相比"
        ),
        _words("differ*"),
    ),
    (
        "not_measured",
        _words(
            "missing|not measured|unmeasured|not recorded|unrecorded|lack*|absent|gap*"
            "|缺失|未测|没测|没有测|缺少|未记录|没有记录|未检测"
        ),
        _words("measured|recorded"),
    ),
    ("quality", _words("quality|implausible|flags|error*|wrong|质量|异常值|不合理|错误"), ()),
    (
        "drivers",
        _words(
            "drove|drive*|driving|cause*|influenc*|factor*|contribut*|attribut*|explain*|push*|raise*|increas*"
            "|lower*|decreas*|important|驱动|原因|因素|影响|导致|解释|贡献|升高|降低"
        ),
        _words("why|reason*|because|为什么|为何"),
    ),
    (
        "result",
        (),
        _words(
            "risk|probability|chance|likelihood|result|score|verdict|positive|negative|风险|概率|结果|可能性|阳性|阴性"
        ),
    ),
)
INPUT_WORDS = _words("value|level|what was|what were|how high|how much|多少|数值|值|水平")
# On a tie the more specific intent answers ("why does it need review?" is about review, not drivers).
PRIORITY: tuple[Intent, ...] = (
    "review",
    "disagreement",
    "comparison",
    "input_value",
    "not_measured",
    "quality",
    "drivers",
    "result",
)
OUT_OF_SCOPE = _words(
    "medication*|medicine*|drug*|dose*|dosage|pill*|prescri*|treat*|therap*|surgery|operat*|die|dies|dying|death"
    "|dead|surviv*|prognosis|live|lives|cure*|diet|药|治疗|手术|死|存活|寿命|预后|治愈|饮食|怎么办"
)
# Other words for an input than its label (the label's own words match too); each names words of the label.
INPUT_ALIASES: dict[str, tuple[str, ...]] = {
    "blood pressure": ("bp",),
    "bp": ("bp",),
    "systolic": ("bp",),
    "收缩压": ("bp",),
    "血压": ("bp",),
    "胆固醇": ("cholesterol",),
    "年龄": ("age",),
    "多大": ("age",),
    "gender": ("sex",),
    "性别": ("sex",),
    "heart rate": ("heart rate",),
    "pulse": ("heart rate",),
    "心率": ("heart rate",),
    "chest pain": ("chest pain",),
    "胸痛": ("chest pain",),
    "ekg": ("ecg",),
    "心电图": ("ecg",),
    "st段压低": ("st depression",),
    "st压低": ("st depression",),
    "st段斜率": ("st slope",),
    "st斜率": ("st slope",),
    "vessel": ("vessels",),
    "血管": ("vessels",),
    "thal": ("thallium",),
    "铊": ("thallium",),
    "sugar": ("glucose",),
    "血糖": ("glucose",),
    "心绞痛": ("angina",),
}
GENERIC_WORDS = frozenset({"resting", "high", "type", "scan", "max", "rate", "heart", "major", "the", "value"})
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[a-z0-9]+")


def language_of(question: str, default: Language = "en") -> Language:
    """Chinese when the question has Chinese characters, English when it has Latin letters, else ``default``."""
    if _CJK.search(question):
        return "zh"
    if re.search(r"[A-Za-z]", question):
        return "en"
    return default


class _Text:
    """The question as words (English, "n't" read as "not") and as raw lower-case text (Chinese)."""

    def __init__(self, question: str) -> None:
        lowered = question.lower().replace("’", "'").replace("n't", " not")
        self.raw = lowered
        self.words = _WORD.findall(lowered)
        self.joined = f" {' '.join(self.words)} "

    def has(self, keyword: str) -> bool:
        if _CJK.search(keyword) or not keyword.isascii():
            return keyword in self.raw
        if keyword.endswith("*"):
            return any(w.startswith(keyword[:-1]) for w in self.words)
        return f" {keyword} " in self.joined

    def any(self, keywords: Iterable[str]) -> bool:
        return any(self.has(k) for k in keywords)


def named_inputs(question: str, inputs: Sequence[InputLine]) -> list[InputLine]:
    """The inputs of the report the question names (its label, a distinctive word of it, or a synonym)."""
    text = _Text(question)
    wanted = {w for alias, words in INPUT_ALIASES.items() if text.has(alias) for w in words}
    found = []
    for line in inputs:
        label = " ".join(_WORD.findall(line.label.lower()))
        keys = {label} | {w for w in label.split() if w not in GENERIC_WORDS and len(w) >= 3}
        if text.any(keys) or any(f" {w} " in f" {label} " for w in wanted):
            found.append(line)
    return found


def intent_of(question: str, inputs: Sequence[InputLine] = ()) -> Intent:
    """The intent the question matches best, ``unknown`` when none does or when it asks for what no report holds."""
    text = _Text(question)
    if not text.words and not _CJK.search(question):
        return "unknown"
    if text.any(OUT_OF_SCOPE):
        return "unknown"
    scores: dict[Intent, int] = {}
    for intent, strong, weak in KEYWORDS:
        score = 2 * sum(text.has(k) for k in strong) + sum(text.has(k) for k in weak)
        if score:
            scores[intent] = score
    if named_inputs(question, inputs):
        # "what was the cholesterol result?", "why did the sex matter?": about that input (its answer says its
        # influence too), unless the question is about review, the models, a comparison or what is missing.
        scores["input_value"] = max(2 + text.any(INPUT_WORDS), scores.pop("drivers", 0), scores.pop("result", 0))
    if not scores:
        return "unknown"
    best = max(scores.values())
    return next(i for i in PRIORITY if scores.get(i) == best)


# --- answering ----------------------------------------------------------------------------------------------------

T: dict[Language, dict[str, str]] = {
    "en": {
        "result": "The fused risk of {positive} is {p} ({verdict}), from {n} model(s) combined by {method}; "
        "agreement between them {agreement} (1 = all agree).",
        "drivers": "What drove the result was measured by occlusion on the {site} model {version}: each recorded "
        "input replaced by that model's reference, and the change in its probability noted.",
        "drivers.top": "The largest influences: {items}.",
        "drivers.item": "{label} ({value}) {delta}",
        "drivers.sign": "Positive values pushed the risk up, negative ones down.",
        "drivers.more": "The report lists {shown} influences; {hidden} smaller one(s) are left out.",
        "drivers.none": "This report has no attribution: no model of this result could be loaded from the "
        "registry, so nothing is said about what drove it.",
        "compare.none": "There is no earlier result of {task} for this patient in the reports, so there is "
        "nothing to compare with.",
        "compare.risk": "Compared with the previous result of {when} ({before}, {verdict_before}), the risk is "
        "now {after} ({verdict_after}): {change}.",
        "compare.verdict_same": "The verdict is unchanged.",
        "compare.verdict_changed": "The verdict changed from {before} to {after}.",
        "compare.inputs": "Inputs that changed: {items}.",
        "compare.input": "{label} {before} → {after}",
        "compare.no_inputs": "No recorded input changed.",
        "compare.review_now": "This result needs review; the previous one did not.",
        "compare.review_gone": "The previous result needed review; this one does not.",
        "models": "The fused risk is {p} ({method}, agreement {agreement}, 1 = all agree). Each model: {items}.",
        "models.item": "{site} (weight {weight}, AUC {auc}) {p}, {diff} from the fused risk",
        "models.furthest": "The model furthest from the fused risk is {site}, at {p} ({diff}).",
        "models.reasons": "Fuse's verification says: {reasons}.",
        "models.no_reason": "Fuse's verification found no disagreement strong enough to ask for review.",
        "models.threshold": "The report does not keep each model's own decision threshold beyond what the "
        "verification quotes.",
        "models.attribution": "What drove the result was measured on the {site} model only; the report has no "
        "attribution for the other models.",
        "review.yes": "This result needs review by a clinician. The reasons from fuse's verification: {reasons}.",
        "review.flagged": "This result needs review by a clinician; the verification gave no reason.",
        "review.no": "This result is not flagged for review: fuse's verification raised no reason.",
        "missing": "Not measured for this result: {items}. The models used their own reference (the training "
        "median) for each.",
        "missing.none": "Every input of the task was recorded for this result.",
        "quality": "Data-quality flags from cleaning: {items}.",
        "quality.item": "{kind} — {field}: {detail}",
        "quality.none": "Cleaning raised no data-quality flags for this record.",
        "input": "{label} was recorded as {value}.",
        "input.missing": "{label} was not measured for this result: the models used their own reference for it.",
        "input.flag": "Data quality ({kind}): {detail}.",
        "input.driver": "Its influence on the result: {delta} (occlusion on the {site} model).",
        "input.not_driver": "It is not among the influences the report lists.",
        "input.before": "In the previous result of {when} it was {value}.",
        "unknown.where": "Look at the full report, or ask the clinician responsible for the patient.",
        "sep": "; ",
        "join": " ",
        "pts": "{value:+.1f} pts",
        "zero": "0.0 pts",
        "none": "none",
        "not measured": "not measured",
    },
    "zh": {
        "result": "{positive}的融合风险为 {p}（{verdict}），由 {n} 个模型以 {method} 合并；"
        "模型间一致度 {agreement}（1 表示完全一致）。",
        "drivers": "驱动该结果的因素通过对 {site} 模型 {version} 的遮挡归因测得："
        "依次将每个已记录的输入替换为该模型的参考值，记录其概率的变化。",
        "drivers.top": "影响最大的输入：{items}。",
        "drivers.item": "{label}（{value}）{delta}",
        "drivers.sign": "正值表示该输入使风险升高，负值表示使风险降低。",
        "drivers.more": "报告列出 {shown} 项影响，另有 {hidden} 项较小的影响未列出。",
        "drivers.none": "这份报告没有归因：该结果的模型都无法从模型库加载，因此报告没有说明是什么驱动了结果。",
        "compare.none": "报告中没有该患者更早的 {task} 结果，无法比较。",
        "compare.risk": "与 {when} 的上一次结果（{before}，{verdict_before}）相比，"
        "现在的风险为 {after}（{verdict_after}）：{change}。",
        "compare.verdict_same": "结论没有变化。",
        "compare.verdict_changed": "结论由 {before} 变为 {after}。",
        "compare.inputs": "发生变化的输入：{items}。",
        "compare.input": "{label} {before} → {after}",
        "compare.no_inputs": "已记录的输入都没有变化。",
        "compare.review_now": "这次结果需要复核，上一次不需要。",
        "compare.review_gone": "上一次结果需要复核，这次不需要。",
        "models": "融合风险为 {p}（{method}，一致度 {agreement}，1 表示完全一致）。各模型：{items}。",
        "models.item": "{site}（权重 {weight}，AUC {auc}）{p}，与融合风险相差 {diff}",
        "models.furthest": "与融合风险相差最大的模型是 {site}，为 {p}（{diff}）。",
        "models.reasons": "融合校验的说明：{reasons}。",
        "models.no_reason": "融合校验没有发现足以要求复核的分歧。",
        "models.threshold": "除校验说明中引用的以外，报告没有保存各模型自己的判定阈值。",
        "models.attribution": "驱动因素只在 {site} 模型上测得；报告没有其他模型的归因。",
        "review.yes": "这份结果需要临床医生复核。融合校验给出的原因：{reasons}。",
        "review.flagged": "这份结果需要临床医生复核；校验没有给出原因。",
        "review.no": "这份结果没有被标记为需要复核：融合校验没有提出任何原因。",
        "missing": "这次结果未测量的输入：{items}。模型对每一项都使用了自己的参考值（训练中位数）。",
        "missing.none": "这次结果记录了该任务的全部输入。",
        "quality": "数据清洗给出的数据质量标记：{items}。",
        "quality.item": "{kind} — {field}：{detail}",
        "quality.none": "数据清洗没有为这条记录给出数据质量标记。",
        "input": "{label} 的记录值为 {value}。",
        "input.missing": "这次结果未测量 {label}：模型对它使用了自己的参考值。",
        "input.flag": "数据质量（{kind}）：{detail}。",
        "input.driver": "它对结果的影响：{delta}（{site} 模型上的遮挡归因）。",
        "input.not_driver": "它不在报告列出的影响之中。",
        "input.before": "在 {when} 的上一次结果中，它是 {value}。",
        "unknown.where": "请查看完整报告，或咨询负责该患者的临床医生。",
        "sep": "；",
        "join": "",
        "pts": "{value:+.1f} 个百分点",
        "zero": "0.0 个百分点",
        "none": "无",
        "not measured": "未测量",
    },
}


def percent(probability: float) -> str:
    """A probability as the report page shows it: ``64.1%``."""
    return f"{probability * 100:.1f}%"


def points(delta: float, language: Language = "en") -> str:
    """A change of probability in percentage points, signed; no "-0.0" for one that rounds to nothing."""
    value = round(delta * 100, 1)
    return T[language]["zero"] if value == 0 else T[language]["pts"].format(value=value)


class _Builder:
    def __init__(self, view: ReportView, language: Language) -> None:
        self.view = view
        self.language = language
        self.sentences: list[str] = []
        self.facts: list[Fact] = []

    def say(self, key: str, **values: object) -> None:
        self.sentences.append(T[self.language][key].format(**values))

    def fact(self, label: str, value: str, source: str, report_id: str | None = None) -> str:
        self.facts.append(Fact(label=label, value=value, source=source, report_id=report_id or self.view.report_id))
        return value

    def sep(self) -> str:
        return T[self.language]["sep"]

    def answer(self, intent: Intent, grounded: bool = True) -> Answer:
        sources = list(dict.fromkeys(f.source for f in self.facts))
        return Answer(
            grounded=grounded,
            intent=intent,
            language=self.language,
            text=T[self.language]["join"].join(self.sentences),
            sentences=self.sentences,
            facts=self.facts,
            sources=sources,
        )


def answer(question: str, view: ReportView, previous: ReportView | None = None, language: Language = "en") -> Answer:
    """The answer to ``question`` from ``view`` (and ``previous``, the patient's previous report of the task, for a
    comparison), in the question's language (``language`` when the question does not show one)."""
    spoken = language_of(question, language)
    intent = intent_of(question[:MAX_QUESTION], view.inputs)
    b = _Builder(view, spoken)
    if intent == "unknown":
        b.sentences += [I_DONT_KNOW[spoken], T[spoken]["unknown.where"]]
        return b.answer("unknown", grounded=False)
    if intent == "input_value":
        for line in named_inputs(question[:MAX_QUESTION], view.inputs):
            _input(b, line, previous)
    else:
        {
            "result": _result,
            "drivers": _drivers,
            "comparison": lambda b: _comparison(b, previous),
            "disagreement": _disagreement,
            "review": _review,
            "not_measured": _not_measured,
            "quality": _quality,
        }[intent](b)
    return b.answer(intent)


def _result(b: _Builder) -> None:
    v = b.view
    b.say(
        "result",
        positive=v.positive_label,
        p=b.fact("fused risk", percent(v.probability), RESULT),
        verdict=b.fact("verdict", v.verdict, RESULT),
        n=len(v.models),
        method=v.method.replace("_", " "),
        agreement=b.fact("agreement", f"{v.agreement:.2f}", RESULT),
    )


def _drivers(b: _Builder) -> None:
    v = b.view
    if not v.drivers or v.attribution_model is None:
        b.fact("attribution", T[b.language]["none"], DRIVERS)
        b.say("drivers.none")
        return
    model = v.attribution_model
    b.fact("attribution model", f"{model.site} {model.version}", DRIVERS)
    b.say("drivers", site=model.site, version=model.version)
    top = sorted(v.drivers, key=lambda d: -abs(d.delta))[:TOP_DRIVERS]
    items = [
        T[b.language]["drivers.item"].format(
            label=d.label, value=d.value, delta=b.fact(d.label, points(d.delta, b.language), DRIVERS)
        )
        for d in top
    ]
    b.say("drivers.top", items=b.sep().join(items))
    b.say("drivers.sign")
    if v.drivers_not_shown or len(v.drivers) > len(top):
        b.say("drivers.more", shown=len(v.drivers), hidden=v.drivers_not_shown)


def _when(view: ReportView) -> str:
    return view.created_at.strftime("%Y-%m-%d")


def _comparison(b: _Builder, previous: ReportView | None) -> None:
    v = b.view
    if previous is None:
        b.fact("earlier result", T[b.language]["none"], RESULT)
        b.say("compare.none", task=v.task)
        return
    before = b.fact("previous risk", percent(previous.probability), RESULT, previous.report_id)
    verdict_before = b.fact("previous verdict", previous.verdict, RESULT, previous.report_id)
    after = b.fact("risk", percent(v.probability), RESULT)
    change = b.fact("risk change", points(v.probability - previous.probability, b.language), RESULT)
    b.say(
        "compare.risk",
        when=_when(previous),
        before=before,
        verdict_before=verdict_before,
        after=after,
        verdict_after=v.verdict,
        change=change,
    )
    if previous.label == v.label:
        b.say("compare.verdict_same")
    else:
        b.say("compare.verdict_changed", before=previous.verdict, after=b.fact("verdict", v.verdict, RESULT))
    was = {line.label: line for line in previous.inputs}
    missing = T[b.language]["not measured"]
    changed = [(line, was[line.label]) for line in v.inputs if line.label in was and was[line.label].text != line.text]
    if changed:
        items = [
            T[b.language]["compare.input"].format(
                label=now.label,
                before=old.text or missing,
                after=b.fact(now.label, now.text or missing, _input_source(v, now)),
            )
            for now, old in changed
        ]
        b.say("compare.inputs", items=b.sep().join(items))
    else:
        b.say("compare.no_inputs")
    if v.needs_review and not previous.needs_review:
        b.fact("needs review", "yes", REVIEW)
        b.say("compare.review_now")
    elif previous.needs_review and not v.needs_review:
        b.fact("needs review", "no", RESULT)
        b.say("compare.review_gone")


def _disagreement(b: _Builder) -> None:
    v = b.view
    language = b.language
    items = []
    for m in v.models:
        items.append(
            T[language]["models.item"].format(
                site=m.site,
                weight=b.fact(f"{m.site} weight", f"{m.weight:.2f}", MODELS),
                auc=b.fact(f"{m.site} AUC", f"{m.auc:.2f}", MODELS) if m.auc is not None else "—",
                p=b.fact(f"{m.site} risk", percent(m.probability), MODELS),
                diff=points(m.probability - v.probability, language),
            )
        )
    b.say(
        "models",
        p=b.fact("fused risk", percent(v.probability), RESULT),
        method=v.method.replace("_", " "),
        agreement=b.fact("agreement", f"{v.agreement:.2f}", RESULT),
        items=b.sep().join(items),
    )
    if v.models:
        far = max(v.models, key=lambda m: abs(m.probability - v.probability))
        b.say(
            "models.furthest",
            site=far.site,
            p=percent(far.probability),
            diff=points(far.probability - v.probability, language),
        )
    disagreements = [r for r in v.review_reasons if "disagree" in r]
    if disagreements:
        b.say("models.reasons", reasons=b.sep().join(b.fact("review reason", r, REVIEW) for r in disagreements))
    else:
        b.say("models.no_reason")
    b.say("models.threshold")
    if v.attribution_model is not None and v.drivers:
        b.say("models.attribution", site=b.fact("attribution model", v.attribution_model.site, DRIVERS))


def _review(b: _Builder) -> None:
    v = b.view
    if not v.needs_review:
        b.fact("needs review", "no", RESULT)
        b.say("review.no")
    elif v.review_reasons:
        b.fact("needs review", "yes", REVIEW)
        b.say("review.yes", reasons=b.sep().join(b.fact("review reason", r, REVIEW) for r in v.review_reasons))
    else:
        b.fact("needs review", "yes", REVIEW)
        b.say("review.flagged")


def _not_measured(b: _Builder) -> None:
    v = b.view
    if v.not_measured:
        missing = T[b.language]["not measured"]
        for label in v.not_measured:
            b.fact(label, missing, NOT_MEASURED)
        b.say("missing", items=b.sep().join(v.not_measured))
    else:
        b.fact("not measured", T[b.language]["none"], DRIVERS if b.view.drivers else RESULT)
        b.say("missing.none")


def _quality(b: _Builder) -> None:
    v = b.view
    if not v.quality_flags:
        b.fact("data-quality flags", T[b.language]["none"], QUALITY)
        b.say("quality.none")
        return
    items = [
        T[b.language]["quality.item"].format(
            kind=f.kind.replace("_", " "), field=f.field, detail=b.fact(f"{f.kind} {f.field}", f.detail, QUALITY)
        )
        for f in v.quality_flags
    ]
    b.say("quality", items=b.sep().join(items))


def _input_source(view: ReportView, line: InputLine) -> str:
    """Where the page shows an input: the drivers table when it is one, the not-measured line, else the FHIR
    form (the RiskAssessment's basis cites every recorded input)."""
    if line.text is None:
        return NOT_MEASURED
    if any(d.label == line.label for d in view.drivers):
        return DRIVERS
    return FHIR


def _flags_of(view: ReportView, line: InputLine) -> list[QualityFlag]:
    label = line.label.lower()
    coded = f"{line.system}|{line.code}" if line.code else None
    return [
        f
        for f in view.quality_flags
        if f.field == coded or f.field.replace("_", " ").lower() == label or (line.code and f.field == line.code)
    ]


def _input(b: _Builder, line: InputLine, previous: ReportView | None) -> None:
    v = b.view
    source = _input_source(v, line)
    if line.text is None:
        b.fact(line.label, T[b.language]["not measured"], source)
        b.say("input.missing", label=line.label)
        for flag in _flags_of(v, line):
            detail = b.fact(f"{line.label} {flag.kind}", flag.detail, QUALITY)
            b.say("input.flag", kind=flag.kind.replace("_", " "), detail=detail)
    else:
        b.say("input", label=line.label, value=b.fact(line.label, line.text, source))
        driver = next((d for d in v.drivers if d.label == line.label), None)
        if driver is not None and v.attribution_model is not None:
            delta = b.fact(f"{line.label} influence", points(driver.delta, b.language), DRIVERS)
            b.say("input.driver", delta=delta, site=v.attribution_model.site)
        elif v.drivers:
            b.say("input.not_driver")
    if previous is not None:
        old = next((i for i in previous.inputs if i.label == line.label), None)
        if old is not None and old.text != line.text:
            value = b.fact(
                f"previous {line.label}",
                old.text or T[b.language]["not measured"],
                _input_source(previous, old),
                previous.report_id,
            )
            b.say("input.before", when=_when(previous), value=value)
