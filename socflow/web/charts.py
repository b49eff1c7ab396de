"""Charts drawn on the server as inline SVG: no chart library, no script, nothing inline for the CSP.

Colours come from CSS classes (``series-0`` ... ``series-8`` in ``static/app.css``). Every label is
XML-escaped; rule ids and sources are attacker-controlled text.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

__all__ = ["bar_chart", "column_chart"]

SERIES_CLASSES = 9


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.1f}"


def bar_chart(items: dict[str, float] | list[tuple[str, float]], *, title: str, unit: str = "") -> str:
    """Horizontal bars, one per label, each with its value written at its end."""
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    width, label_w, row_h, pad = 460, 150, 24, 8
    height = pad * 2 + max(len(pairs), 1) * row_h
    top = max((v for _, v in pairs), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}"><title>{escape(title)}</title>'
    ]
    if not pairs:
        parts.append(f'<text x="{pad}" y="{pad + 16}" class="empty">no data</text>')
    for i, (label, value) in enumerate(pairs):
        y = pad + i * row_h
        bar = (width - label_w - 70) * (value / top)
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<g class="bar" data-label={quoteattr(label)} data-value="{value:g}">'
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" class="label">{escape(short)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar:.1f}" height="{row_h - 8}" '
            f'class="series-{i % SERIES_CLASSES}"/>'
            f'<text x="{label_w + bar + 6:.1f}" y="{y + 16}" class="value">'
            f"{escape(_fmt(value))}{escape(unit)}</text>"
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(buckets: list[str], series: list[dict[str, Any]], *, title: str) -> str:
    """Stacked columns over time: ``series`` is ``[{"key", "counts": [per bucket]}]``."""
    width, height, left, bottom, top_pad = 720, 220, 44, 36, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    n = max(len(buckets), 1)
    totals = [sum(s["counts"][i] for s in series) for i in range(len(buckets))]
    peak = max(totals, default=0) or 1
    col_w = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart column-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end" class="tick">{peak}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    for i, bucket in enumerate(buckets):
        x = left + i * col_w
        y = top_pad + plot_h
        for k, s in enumerate(series):
            count = s["counts"][i]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(col_w - 2, 1):.1f}" height="{h:.1f}" '
                f'class="series-{k % SERIES_CLASSES}" data-bucket="{escape(bucket)}" '
                f'data-key={quoteattr(str(s["key"]))} data-count="{count}"><title>'
                f"{escape(str(s['key']))} {escape(bucket)}: {count}</title></rect>"
            )
        every = max(1, n // 8)
        if i % every == 0:
            label = bucket[5:10] if len(bucket) >= 10 else bucket
            if "T" in bucket:
                label = bucket[11:16]
            parts.append(
                f'<text x="{x + col_w / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'class="tick">{escape(label)}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch series-{k % SERIES_CLASSES}"></span>{escape(str(s["key"]))} '
        f'<span class="muted">({s["total"]})</span></li>'
        for k, s in enumerate(series)
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'
