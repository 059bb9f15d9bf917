"""The report as an A4 PDF (reportlab: pure Python, no system libraries), the same sections as the HTML page."""

from __future__ import annotations

import io
from collections.abc import Sequence
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, Rect, String, Wedge
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Table, TableStyle

from services.report.render.html import report_time
from services.report.render.pictures import DOWN, RISK_HIGH, RISK_LOW, TRACK, UP, points
from services.report.view import ReportView

STYLES = getSampleStyleSheet()
BODY = ParagraphStyle("body", parent=STYLES["BodyText"], fontSize=9.5, leading=12.5)
NOTE = ParagraphStyle("note", parent=BODY, fontSize=8.5, textColor=colors.HexColor("#475467"))
H1 = ParagraphStyle("h1", parent=STYLES["Heading1"], fontSize=16, spaceAfter=4)
H2 = ParagraphStyle("h2", parent=STYLES["Heading2"], fontSize=11.5, spaceBefore=10, spaceAfter=4)
BOX = ParagraphStyle(
    "box",
    parent=BODY,
    fontName="Helvetica-Bold",
    borderColor=colors.black,
    borderWidth=1.2,
    borderPadding=6,
    spaceBefore=14,
)
GRID = TableStyle(
    [
        ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.HexColor("#475467")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#d0d5dd")),
        ("LINEBELOW", (0, 1), (-1, -1), 0.3, colors.HexColor("#eaecf0")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
)


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _gauge(probability: float, positive: bool, caption: str) -> Drawing:
    p = min(max(probability, 0.0), 1.0)
    colour = colors.HexColor(RISK_HIGH if positive else RISK_LOW)
    drawing = Drawing(70 * mm, 40 * mm)
    cx, cy, r = 35 * mm, 8 * mm, 28 * mm
    drawing.add(Wedge(cx, cy, r, 0, 180, radius1=r - 8 * mm, fillColor=colors.HexColor(TRACK), strokeColor=None))
    if p > 0:
        drawing.add(Wedge(cx, cy, r, 180 - 180 * p, 180, radius1=r - 8 * mm, fillColor=colour, strokeColor=None))
    drawing.add(
        String(
            cx, cy + 4 * mm, f"{p:.0%}", fontName="Helvetica-Bold", fontSize=20, fillColor=colour, textAnchor="middle"
        )
    )
    drawing.add(String(cx, cy - 5 * mm, caption, fontSize=8, textAnchor="middle"))
    return drawing


def _bar(fraction: float, colour: str, width: float = 30 * mm) -> Drawing:
    drawing = Drawing(width, 3 * mm)
    drawing.add(Rect(0, 0, width, 3 * mm, fillColor=colors.HexColor(TRACK), strokeColor=None))
    drawing.add(
        Rect(0, 0, min(max(fraction, 0.0), 1.0) * width, 3 * mm, fillColor=colors.HexColor(colour), strokeColor=None)
    )
    return drawing


def _influence(delta: float, largest: float, width: float = 36 * mm) -> Drawing:
    half = width / 2
    length = 0.0 if largest <= 0 else min(abs(delta) / largest, 1.0) * (half - 1)
    drawing = Drawing(width, 3 * mm)
    drawing.add(
        Rect(
            half if delta >= 0 else half - length,
            0,
            length,
            3 * mm,
            fillColor=colors.HexColor(UP if delta >= 0 else DOWN),
            strokeColor=None,
        )
    )
    drawing.add(Line(half, 0, half, 3 * mm, strokeWidth=0.5))
    return drawing


def _table(rows: Sequence[Sequence[object]], widths: Sequence[float]) -> Table:
    table = Table(list(map(list, rows)), colWidths=list(widths), hAlign="LEFT")
    table.setStyle(GRID)
    return table


def _sections(v: ReportView) -> list[Flowable]:
    time = report_time(v)
    story: list[Flowable] = [
        _p(f"AI MASS · DIAGNOSTIC SUPPORT REPORT · report {v.report_id}", NOTE),
        _p(v.task_title, H1),
        _table(
            [["Patient (pseudonym)", "Hospital", "Report time (UTC)", "Task"], [v.patient, v.hospital, time, v.task]],
            [62 * mm, 38 * mm, 36 * mm, 44 * mm],
        ),
    ]
    if v.needs_review:
        reasons = "; ".join(v.review_reasons) or "flagged by the verification step"
        story.append(
            Paragraph(
                f"<b>Needs review by a clinician:</b> {escape(reasons)}",
                ParagraphStyle(
                    "review", parent=BODY, backColor=colors.HexColor("#fffaeb"), borderPadding=5, spaceBefore=10
                ),
            )
        )
    summary = [
        _p(
            v.verdict.capitalize(),
            ParagraphStyle("verdict", parent=BODY, fontName="Helvetica-Bold", fontSize=13, leading=16),
        ),
        _p(f"Fused probability of {v.positive_label}: {v.probability * 100:.1f}%"),
        _p(
            f"{len(v.models)} model(s) combined by {v.method.replace('_', ' ')}; agreement {v.agreement:.2f} "
            "(1 = all agree)."
        ),
    ]
    result = Table(
        [[_gauge(v.probability, bool(v.label), f"risk of {v.positive_label}"), summary]],
        colWidths=[75 * mm, 105 * mm],
        hAlign="LEFT",
    )
    result.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    story += [_p("Result", H2), result, _p("Contributing models", H2)]
    story.append(
        _table(
            [["Model (site)", "Version", "Weight", "Own risk", "", "AUC"]]
            + [
                [
                    m.site,
                    m.version,
                    f"{m.weight:.2f}",
                    _bar(m.probability, RISK_HIGH if m.probability >= 0.5 else RISK_LOW),
                    f"{m.probability * 100:.1f}%",
                    "—" if m.auc is None else f"{m.auc:.2f}",
                ]
                for m in v.models
            ],
            [36 * mm, 40 * mm, 18 * mm, 36 * mm, 22 * mm, 18 * mm],
        )
    )
    story += [_p("What drove the result", H2)]
    if v.drivers:
        largest = max(abs(d.delta) for d in v.drivers)
        story.append(
            _table(
                [["Input", "Recorded value", "Influence", "Change"]]
                + [[d.label, d.value, _influence(d.delta, largest), points(d.delta)] for d in v.drivers],
                [52 * mm, 50 * mm, 44 * mm, 24 * mm],
            )
        )
        hidden = f" {v.drivers_not_shown} smaller influence(s) not shown." if v.drivers_not_shown else ""
        story.append(_p((v.attribution or "") + hidden, NOTE))
    else:
        story.append(_p("No attribution: no model of this result could be loaded from the registry.", NOTE))
    if v.not_measured:
        story.append(_p(f"Not measured (the models used their own reference): {', '.join(v.not_measured)}.", NOTE))
    story.append(_p("Data quality", H2))
    if v.quality_flags:
        story.append(
            _table(
                [["Flag", "About", "Detail"]]
                + [[f.kind.replace("_", " "), f.field, _p(f.detail, NOTE)] for f in v.quality_flags],
                [36 * mm, 50 * mm, 90 * mm],
            )
        )
    else:
        story.append(_p("No data-quality flags from cleaning.", NOTE))
    versions = " · ".join(f"{v.task}/{m.site}/{m.version}" for m in v.models)
    story += [_p("Model versions", H2), _p(f"{versions}. Record {v.record_id}."), _p(v.disclaimer, BOX)]
    return story


def build_pdf(story: list[Flowable], title: str, subject: str | None = None) -> bytes:
    """A4 with the report's margins; ``invariant``: the same story gives the same bytes."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=title,
        author="AI Mass report service",
        subject=subject,
        invariant=True,
    )
    document.build(story)
    return buffer.getvalue()


def render_pdf(view: ReportView) -> bytes:
    return build_pdf(_sections(view), f"{view.task_title} — report {view.report_id}", view.summary)
