"""Inline SVG pictures for the HTML report (pure strings): the risk gauge and the small bars beside the tables."""

from __future__ import annotations

import math
from html import escape

RISK_HIGH = "#b42318"
RISK_LOW = "#0f766e"
TRACK = "#e4e7ec"
UP = "#c2410c"
DOWN = "#1d4ed8"


def risk_colour(positive: bool) -> str:
    return RISK_HIGH if positive else RISK_LOW


def _tick(cx: float, cy: float, radius: float, at: float) -> str:
    """0% and 100% under the arc's ends, 50% above its top."""
    x = cx + radius * math.cos(math.pi * (1.0 - at))
    y = cy + 14 if at in (0.0, 1.0) else cy - radius - 8
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" text-anchor="middle" fill="#667085">{at:.0%}</text>'


def gauge_svg(probability: float, positive: bool, caption: str) -> str:
    """A half-circle gauge filled to ``probability``, the percentage in its middle."""
    cx, cy, r, w = 120.0, 128.0, 96.0, 26.0
    p = min(max(probability, 0.0), 1.0)
    angle = math.pi * (1.0 - p)
    x, y = cx + r * math.cos(angle), cy - r * math.sin(angle)
    track = f'<path d="M {cx - r},{cy} A {r} {r} 0 0 1 {cx + r},{cy}" stroke="{TRACK}" stroke-width="{w}" fill="none"/>'
    value = (
        (
            f'<path d="M {cx - r},{cy} A {r} {r} 0 0 1 {x:.2f},{y:.2f}" stroke="{risk_colour(positive)}" '
            f'stroke-width="{w}" fill="none"/>'
        )
        if p > 0
        else ""
    )
    ticks = "".join(_tick(cx, cy, r + w / 2 if t == 0.5 else r, t) for t in (0.0, 0.5, 1.0))
    return (
        f'<svg class="gauge" viewBox="0 0 240 168" width="240" height="168" role="img" '
        f'aria-label="risk {p:.0%}" xmlns="http://www.w3.org/2000/svg">{track}{value}{ticks}'
        f'<text x="{cx}" y="{cy - 14}" font-size="34" font-weight="700" text-anchor="middle" '
        f'fill="{risk_colour(positive)}">{p:.0%}</text>'
        f'<text x="{cx}" y="{cy + 32}" font-size="12" text-anchor="middle" fill="#344054">{escape(caption)}</text>'
        "</svg>"
    )


def bar_svg(probability: float, positive: bool, width: int = 140) -> str:
    p = min(max(probability, 0.0), 1.0)
    return (
        f'<svg viewBox="0 0 {width} 12" width="{width}" height="12" xmlns="http://www.w3.org/2000/svg">'
        f'<rect width="{width}" height="12" rx="3" fill="{TRACK}"/>'
        f'<rect width="{p * width:.1f}" height="12" rx="3" fill="{risk_colour(positive)}"/></svg>'
    )


def influence_svg(delta: float, largest: float, width: int = 160) -> str:
    """A bar from the centre line: right (orange) pushed the risk up, left (blue) pulled it down."""
    half = width / 2
    length = 0.0 if largest <= 0 else min(abs(delta) / largest, 1.0) * (half - 2)
    x = half if delta >= 0 else half - length
    return (
        f'<svg viewBox="0 0 {width} 12" width="{width}" height="12" xmlns="http://www.w3.org/2000/svg">'
        f'<rect x="{x:.1f}" width="{length:.1f}" height="12" fill="{UP if delta >= 0 else DOWN}"/>'
        f'<line x1="{half}" x2="{half}" y1="0" y2="12" stroke="#475467" stroke-width="1"/></svg>'
    )


def points(delta: float) -> str:
    """A probability change in percentage points, signed; no "-0.0" for a change that rounds to nothing."""
    value = round(delta * 100, 1)
    return "0.0 pts" if value == 0 else f"{value:+.1f} pts"
