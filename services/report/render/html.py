"""The report as one self-contained HTML page (inline CSS and SVG, nothing fetched), readable and printable."""

from __future__ import annotations

from datetime import UTC
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

from services.report.render.pictures import bar_svg, gauge_svg, influence_svg, points, risk_colour
from services.report.view import ReportView

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def _template() -> Template:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return environment.get_template("report.html")


def report_time(view: ReportView) -> str:
    return view.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def render_html(view: ReportView) -> bytes:
    largest = max((abs(d.delta) for d in view.drivers), default=0.0)
    return (
        _template()
        .render(
            v=view,
            time=report_time(view),
            colour=risk_colour(bool(view.label)),
            gauge=gauge_svg(view.probability, bool(view.label), f"risk of {view.positive_label}"),
            bar=lambda p: bar_svg(p, p >= 0.5),
            influence=lambda delta: influence_svg(delta, largest),
            points=points,
        )
        .encode()
    )
