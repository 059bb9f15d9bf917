"""The patient's timeline page and the patient search page (server-rendered HTML, inline CSS and SVG, nothing fetched,
no script), usable on a laptop and a tablet: the plots scale with the page width."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

from services.report.inputs import display_unit
from services.report.render.html import TEMPLATES
from services.report.render.pictures import RISK_HIGH, RISK_LOW, TRACK, points
from services.report.timeline import RISK_BANDS, THRESHOLD, InputSeries, PatientHit, ResultPoint, Search, Timeline
from services.report.view import DISCLAIMER

REVIEW = "#dc6803"
BAND_FILL = "#eef4ff"
OUT_OF_RANGE = "#b42318"


@lru_cache(maxsize=2)
def _template(name: str) -> Template:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return environment.get_template(name)


def day(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def moment(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _x_positions(times: Sequence[datetime], left: float, right: float) -> list[float]:
    """Positions by time (a result a year later sits further right); one result in the middle."""
    if len(times) < 2:
        return [(left + right) / 2] * len(times)
    if times[0] == times[-1]:  # results of one moment: side by side
        return _even(times, left, right)
    start, span = times[0].timestamp(), times[-1].timestamp() - times[0].timestamp()
    return [left + (t.timestamp() - start) / span * (right - left) for t in times]


def _even(times: Sequence[datetime], left: float, right: float) -> list[float]:
    step = (right - left) / (len(times) - 1)
    return [left + i * step for i in range(len(times))]


def trend_svg(task: str, results: Sequence[ResultPoint]) -> str:
    """The risk over time: one dot per result (its verdict's colour), the threshold line, an orange ring on each
    result that needs review, the risk bands' bounds as faint lines."""
    width, height, left, right, top, bottom = 640.0, 220.0, 44.0, 620.0, 14.0, 186.0

    def y(p: float) -> float:
        return bottom - min(max(p, 0.0), 1.0) * (bottom - top)

    xs = _x_positions([r.created_at for r in results], left + 10, right - 10)
    parts = [
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="#fcfcfd" stroke="{TRACK}"/>'
    ]
    for at in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{left - 6}" y="{y(at) + 4:.1f}" font-size="11" text-anchor="end" fill="#667085">{at:.0%}</text>'
        )
    for band, bound in RISK_BANDS[:-1]:
        if bound != THRESHOLD:
            parts.append(
                f'<line x1="{left}" x2="{right}" y1="{y(bound):.1f}" y2="{y(bound):.1f}" stroke="{TRACK}" '
                f'stroke-width="1"><title>{band} risk below {bound:.0%}</title></line>'
            )
    parts.append(
        f'<line class="threshold" x1="{left}" x2="{right}" y1="{y(THRESHOLD):.1f}" y2="{y(THRESHOLD):.1f}" '
        f'stroke="#344054" stroke-width="1.2" stroke-dasharray="5 4"/>'
        f'<text x="{right - 2}" y="{y(THRESHOLD) - 5:.1f}" font-size="10" text-anchor="end" fill="#344054">'
        f"threshold {THRESHOLD:.0%}</text>"
    )
    if len(results) > 1:
        line = " ".join(f"{x:.1f},{y(r.probability):.1f}" for x, r in zip(xs, results, strict=True))
        parts.append(f'<polyline points="{line}" fill="none" stroke="#98a2b3" stroke-width="1.5"/>')
    for x, r in zip(xs, results, strict=True):
        colour = RISK_HIGH if r.label else RISK_LOW
        title = escape(
            f"{moment(r.created_at)}: {r.probability:.0%} ({r.verdict})" + (", needs review" if r.needs_review else "")
        )
        if r.needs_review:
            parts.append(
                f'<circle class="review-marker" cx="{x:.1f}" cy="{y(r.probability):.1f}" r="9" fill="none" '
                f'stroke="{REVIEW}" stroke-width="2.5"><title>{title}</title></circle>'
            )
        parts.append(
            f'<circle class="point" data-report-id="{escape(r.report_id)}" cx="{x:.1f}" cy="{y(r.probability):.1f}" '
            f'r="5" fill="{colour}"><title>{title}</title></circle>'
        )
    if results:
        parts.append(
            f'<text x="{xs[0]:.1f}" y="{bottom + 18}" font-size="11" text-anchor="start" fill="#667085">'
            f"{day(results[0].created_at)}</text>"
        )
        if len(results) > 1:
            parts.append(
                f'<text x="{xs[-1]:.1f}" y="{bottom + 18}" font-size="11" text-anchor="end" fill="#667085">'
                f"{day(results[-1].created_at)}</text>"
            )
    return (
        f'<svg id="risk-trend-{escape(task)}" class="trend" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="risk over time" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(parts)}</svg>"
    )


def sparkline_svg(series: InputSeries) -> str:
    """A numeric input over time: its values as a small line, the reference range as a band behind it, values
    outside the range in red."""
    width, height, pad = 160.0, 36.0, 4.0
    measured = [p for p in series.points if p.value is not None]
    if not measured:
        return ""
    low, high = series.reference or (None, None)
    values = [p.value for p in measured if p.value is not None]
    domain = [*values, *(bound for bound in (low, high) if bound is not None)]
    lowest, highest = min(domain), max(domain)
    spread = (highest - lowest) or 1.0
    lowest, highest = lowest - spread * 0.1, highest + spread * 0.1

    def y(v: float) -> float:
        return height - pad - (v - lowest) / (highest - lowest) * (height - 2 * pad)

    xs = _x_positions([p.created_at for p in measured], pad + 3, width - pad - 3)
    parts = []
    if series.reference is not None:
        top, bottom = y(high if high is not None else highest), y(low if low is not None else lowest)
        parts.append(
            f'<rect class="reference-band" x="0" y="{top:.1f}" width="{width:.0f}" height="{bottom - top:.1f}" '
            f'fill="{BAND_FILL}"/>'
        )
    if len(measured) > 1:
        line = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in zip(xs, values, strict=True))
        parts.append(f'<polyline points="{line}" fill="none" stroke="#475467" stroke-width="1.2"/>')
    for x, p in zip(xs, measured, strict=True):
        colour = OUT_OF_RANGE if p.out_of_range else "#344054"
        parts.append(f'<circle cx="{x:.1f}" cy="{y(p.value or 0.0):.1f}" r="2.6" fill="{colour}"/>')
    return (
        f'<svg class="sparkline" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="{escape(series.label)} over time" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(parts)}</svg>"
    )


def reference_text(series: InputSeries) -> str:
    if series.reference is None:
        return "—"
    low, high = series.reference
    unit = display_unit(series.unit)
    if low is None:
        text = f"< {high:g}"
    elif high is None:
        text = f"≥ {low:g}"
    else:
        text = f"{low:g}–< {high:g}"
    return f"{text} {unit}".strip()


def linker(keep: str) -> Callable[..., str]:
    """``href(path, **query)``: a link that keeps a signed link's parameters (``keep``), so a page opened from a
    link can follow its own links."""

    def href(path: str, **query: str) -> str:
        given = urlencode(query)
        joined = "&".join(part for part in (keep, given) if part)
        return f"{path}?{joined}" if joined else path

    return href


def render_timeline_html(timeline: Timeline, keep: str = "") -> bytes:
    return (
        _template("timeline.html")
        .render(
            t=timeline,
            result_count=sum(len(task.results) for task in timeline.tasks),
            disclaimer=DISCLAIMER,
            href=linker(keep),
            trend=trend_svg,
            sparkline=sparkline_svg,
            reference_text=reference_text,
            moment=moment,
            points=points,
            risk_colour=lambda label: RISK_HIGH if label else RISK_LOW,
        )
        .encode()
    )


def render_search_html(hits: Sequence[PatientHit], search: Search, keep: str = "") -> bytes:
    return (
        _template("patients.html")
        .render(hits=hits, search=search, href=linker(keep), moment=moment, bands=[b for b, _ in RISK_BANDS])
        .encode()
    )
