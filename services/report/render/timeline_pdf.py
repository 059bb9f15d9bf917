"""The patient's timeline as an A4 PDF (``GET /patients/{p}/export?format=pdf``): per task the risk-trend plot, the
results, the key inputs against their reference ranges and what changed; the report PDF's styles and helpers."""

from __future__ import annotations

from datetime import UTC, datetime

from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable

from services.report.render.pdf import BOX, H1, H2, NOTE, _p, _table, build_pdf
from services.report.render.pictures import RISK_HIGH, RISK_LOW, TRACK, points
from services.report.render.timeline_html import REVIEW, day, moment, reference_text
from services.report.timeline import THRESHOLD, ResultPoint, TaskTimeline, Timeline
from services.report.view import DISCLAIMER


def _positions(results: list[ResultPoint], left: float, right: float) -> list[float]:
    times = [r.created_at.timestamp() for r in results]
    if len(times) == 1:
        return [(left + right) / 2]
    span = times[-1] - times[0]
    if span <= 0:
        return [left + i * (right - left) / (len(times) - 1) for i in range(len(times))]
    return [left + (t - times[0]) / span * (right - left) for t in times]


def trend_drawing(results: list[ResultPoint], width: float = 180 * mm, height: float = 52 * mm) -> Drawing:
    """The HTML page's risk trend: a dot per result, the 50% threshold dashed, a ring on each that needs review."""
    left, right, bottom, top = 14 * mm, width - 4 * mm, 8 * mm, height - 3 * mm
    drawing = Drawing(width, height)
    drawing.add(Rect(left, bottom, right - left, top - bottom, fillColor=None, strokeColor=colors.HexColor(TRACK)))

    def y(p: float) -> float:
        return bottom + min(max(p, 0.0), 1.0) * (top - bottom)

    for at in (0.0, 0.5, 1.0):
        drawing.add(String(left - 2, y(at) - 3, f"{at:.0%}", fontSize=7, textAnchor="end"))
    drawing.add(
        Line(left, y(THRESHOLD), right, y(THRESHOLD), strokeDashArray=[3, 2], strokeColor=colors.HexColor("#344054"))
    )
    xs = _positions(results, left + 4 * mm, right - 4 * mm)
    if len(results) > 1:
        drawing.add(
            PolyLine(
                [c for x, r in zip(xs, results, strict=True) for c in (x, y(r.probability))],
                strokeColor=colors.HexColor("#98a2b3"),
                strokeWidth=1,
            )
        )
    for x, r in zip(xs, results, strict=True):
        if r.needs_review:
            drawing.add(
                Circle(
                    x, y(r.probability), 2.8 * mm, fillColor=None, strokeColor=colors.HexColor(REVIEW), strokeWidth=1.5
                )
            )
        colour = colors.HexColor(RISK_HIGH if r.label else RISK_LOW)
        drawing.add(Circle(x, y(r.probability), 1.6 * mm, fillColor=colour, strokeColor=None))
    drawing.add(String(xs[0], 1 * mm, day(results[0].created_at), fontSize=7, textAnchor="start"))
    if len(results) > 1:
        drawing.add(String(xs[-1], 1 * mm, day(results[-1].created_at), fontSize=7, textAnchor="end"))
    return drawing


def _task_sections(task: TaskTimeline) -> list[Flowable]:
    latest = task.latest
    review = ", needs review" if latest.needs_review else ""
    story: list[Flowable] = [
        _p(task.title, H2),
        _p(
            f"Latest: {latest.probability:.0%} risk of {task.positive_label} ({latest.verdict}, {latest.band} risk"
            f"{review}), {moment(latest.created_at)} UTC."
        ),
        trend_drawing(task.results),
        _p("Dots: results (red: positive); ring: needs review; dashed line: 50% threshold.", NOTE),
        _table(
            [["Time (UTC)", "Hospital", "Risk", "Verdict", "Review", "Quality flags"]]
            + [
                [
                    moment(r.created_at),
                    r.hospital,
                    f"{r.probability * 100:.1f}% ({r.band})",
                    _p(r.verdict, NOTE),
                    _p("; ".join(r.review_reasons) or ("needs review" if r.needs_review else "—"), NOTE),
                    _p("; ".join(f"{f.kind.replace('_', ' ')}: {f.field}" for f in r.quality_flags) or "none", NOTE),
                ]
                for r in reversed(task.results)
            ],
            [26 * mm, 22 * mm, 24 * mm, 30 * mm, 40 * mm, 38 * mm],
        ),
        _p("Key inputs", H2),
    ]
    rows: list[list[object]] = [["Input", "Reference", "Values over time (oldest first)"]]
    for series in task.inputs:
        values = "; ".join(
            (p.text or "not measured") + (" (out of range)" if p.out_of_range else "") for p in series.points
        )
        rows.append([_p(series.label, NOTE), reference_text(series), _p(values, NOTE)])
    story.append(_table(rows, [46 * mm, 26 * mm, 108 * mm]))
    if task.changes:
        story.append(_p("What changed since the last result", H2))
        for c in reversed(task.changes):
            inputs = "; ".join(
                f"{i.label} {i.before or 'not measured'} → {i.after or 'not measured'}" for i in c.inputs
            )
            why = ", ".join(f"{d.label} {points(d.difference)}" for d in c.attribution[:5])
            story.append(
                _p(
                    f"{c.probability_before:.0%} → {c.probability_after:.0%} ({points(c.risk_change)}). "
                    f"Inputs changed: {inputs or 'none'}. Influence difference: {why or 'no attribution'}.",
                    NOTE,
                )
            )
    return story


def render_timeline_pdf(timeline: Timeline, now: datetime | None = None) -> bytes:
    made = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    story: list[Flowable] = [
        _p(f"AI MASS · HEALTH TIMELINE · exported {made} UTC", NOTE),
        _p(f"Patient {timeline.patient}", H1),
        _p(f"Hospital: {', '.join(timeline.hospitals)}. Tasks: {', '.join(t.task for t in timeline.tasks)}.", NOTE),
    ]
    for task in timeline.tasks:
        story += _task_sections(task)
    story.append(_p(DISCLAIMER, BOX))
    return build_pdf(story, f"Health timeline — patient {timeline.patient}")
