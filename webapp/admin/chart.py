"""Attempts over time as a stacked bar chart, drawn server side as inline SVG.

No script and no chart library: the page stays readable without JavaScript
and under a strict CSP (colours are SVG presentation attributes and CSS
classes, not `style=""`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

#: Bottom to top, with the CSS class each group's bars take.
GROUPS = ("verified", "placed", "person", "blocked", "system", "handoff")
LABELS = {
    "verified": "verified",
    "placed": "calls placed",
    "person": "mistakes",
    "blocked": "blocked",
    "system": "provider / system",
    "handoff": "hand-off",
}

WIDTH, HEIGHT = 720, 180
LEFT, BOTTOM, TOP = 40, 22, 8


def stacked_bars(series: list[tuple[datetime, Counter[str]]], bucket: timedelta) -> Markup:
    """An SVG chart of `series` (bucket start → counts by group)."""
    if not series:
        return Markup('<p class="hint">No attempts in this range.</p>')
    peak = max(sum(counts.values()) for _, counts in series) or 1
    scale = _nice(peak)
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    step = plot_w / len(series)
    bar_w = max(1.0, step * 0.8)
    parts = [
        (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="Attempts per {"hour" if bucket < timedelta(days=1) else "day"}, by outcome">'
        )
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{scale * fraction:g}</text>')
    label_every = max(1, len(series) // 8)
    for index, (start, counts) in enumerate(series):
        x = LEFT + index * step + (step - bar_w) / 2
        y = TOP + plot_h
        total = sum(counts.values())
        title = f"{start:%Y-%m-%d %H:%M} UTC: {total} — " + ", ".join(
            f"{LABELS[g]} {counts[g]}" for g in GROUPS if counts[g]
        )
        parts.append(f"<g><title>{escape(title)}</title>")
        for name in GROUPS:
            if counts[name]:
                height = plot_h * counts[name] / scale
                y -= height
                parts.append(
                    f'<rect class="bar {name}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{height:.1f}"/>'
                )
        parts.append("</g>")
        if index % label_every == 0:
            label = f"{start:%H:%M}" if bucket < timedelta(days=1) else f"{start:%d %b}"
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{label}</text>'
            )
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch {name}"></span>{LABELS[name]}</li>' for name in GROUPS)
    legend += "<li>times in UTC</li>"
    # Numbers, our own labels, and the one title escaped above: nothing else goes in.
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')  # noqa: S704


def _nice(value: int) -> int:
    """A round axis maximum at or above `value`: 1, 2, 5, 10, 20, 50…"""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude >= value:
                return factor * magnitude
        magnitude *= 10
