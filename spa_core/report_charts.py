"""Inline SVG charts for the HTML report (no plotting library, no network).

Every chart is a self-contained ``<svg>`` element that scales with its container;
hovering a bar shows the exact numbers (SVG ``<title>``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from .report_data import LayerRow

KEPT = "#3563d9"
REMOVED = "#f0a39b"
GRID = "#e4e7ec"
MUTED = "#6b7280"
INK = "#1f2937"


def human(n: float, unit: str = "") -> str:
    """``1.81 G``, ``483.1 M``, ``64``: three significant digits with an SI prefix."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            value = n / factor
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {prefix}{unit}"
    return f"{n:,.0f} {unit}".rstrip() if float(n).is_integer() else f"{n:.3g} {unit}".rstrip()


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 up to at least ``top`` (steps of 1, 2 or 5 x 10^k)."""
    if top <= 0:
        return [0.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else "\u2026" + text[-(limit - 1):]


def width_chart(rows: Sequence[LayerRow]) -> str:
    """One row per layer: kept channels (blue) and removed ones (red), with numbers."""
    width, label_w, bar_x, bar_w = 1100, 232, 240, 500
    num_x, macs_x = bar_x + bar_w + 18, bar_x + bar_w + 150
    row_h, bar_h, top = 20, 12, 40
    height = top + row_h * max(len(rows), 1) + 8
    widest = max((r.before for r in rows), default=1) or 1
    ticks = nice_ticks(widest)
    scale = bar_w / ticks[-1]
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="channel width of each layer before and after pruning" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{bar_x}" y="6" width="12" height="12" rx="2" fill="{KEPT}"/>'
        f'<text x="{bar_x + 18}" y="16" class="legend">kept channels</text>'
        f'<rect x="{bar_x + 130}" y="6" width="12" height="12" rx="2" fill="{REMOVED}"/>'
        f'<text x="{bar_x + 148}" y="16" class="legend">removed channels</text>',
        f'<text x="{num_x}" y="16" class="head">channels</text>'
        f'<text x="{macs_x}" y="16" class="head">MACs before \u2192 after</text>',
    ]
    for t in ticks:
        x = bar_x + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 6}" stroke="{GRID}"/>')
        out.append(f'<text x="{x:.1f}" y="{top - 12}" class="tick" text-anchor="middle">{t:,.0f}</text>')
    for i, r in enumerate(rows):
        y = top + i * row_h
        kept_w, gone_w = r.after * scale, (r.before - r.after) * scale
        changed = r.after != r.before
        tip = (f"{r.node} ({r.op}): {r.before:,} \u2192 {r.after:,} channels; "
               f"MACs {r.macs_before:,} \u2192 {r.macs_after:,}")
        out.append(f"<g><title>{escape(tip)}</title>")
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{row_h}" fill="#f8f9fb"/>')
        by = y + (row_h - bar_h) / 2
        out.append(f'<text x="{label_w}" y="{y + 14}" class="label" text-anchor="end">{escape(_clip(r.label, 34))}</text>')
        out.append(f'<rect x="{bar_x}" y="{by}" width="{kept_w:.1f}" height="{bar_h}" rx="2" fill="{KEPT}"/>')
        if gone_w > 0:
            out.append(f'<rect x="{bar_x + kept_w:.1f}" y="{by}" width="{gone_w:.1f}" height="{bar_h}" rx="2" fill="{REMOVED}"/>')
        nums = f"{r.before:,} \u2192 {r.after:,}" if changed else f"{r.before:,} (kept)"
        out.append(f'<text x="{num_x}" y="{y + 14}" class="{"num" if changed else "num same"}">{nums}</text>')
        macs = f"{human(r.macs_before)} \u2192 {human(r.macs_after)}" if r.macs_before else "-"
        out.append(f'<text x="{macs_x}" y="{y + 14}" class="num">{macs}</text></g>')
    out.append("</svg>")
    return "".join(out)


def score_histogram(scores: Sequence[float], kept: Sequence[int], bins: int = 24) -> str:
    """A small stacked histogram of a group's channel scores: kept (blue) over removed (red)."""
    width, height, pad = 180, 42, 2
    n = len(scores)
    if n == 0:
        return ""
    lo, hi = min(scores), max(scores)
    bins = max(1, min(bins, n))
    span = (hi - lo) or 1.0
    kept_set = set(kept)
    counts = [[0, 0] for _ in range(bins)]  # [removed, kept]
    for i, s in enumerate(scores):
        b = min(bins - 1, int((s - lo) / span * bins)) if hi > lo else 0
        counts[b][i in kept_set] += 1
    tallest = max(a + b for a, b in counts) or 1
    bw = (width - 2 * pad) / bins
    usable = height - 6
    out = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{n} channel scores from {lo:.4g} to {hi:.4g}; '
        f'blue: kept ({len(kept_set)}), red: removed ({n - len(kept_set)})</title>'
    ]
    for b, (gone, keep) in enumerate(counts):
        x = pad + b * bw
        h_gone, h_keep = gone / tallest * usable, keep / tallest * usable
        base = height - 2
        if gone:
            out.append(f'<rect x="{x + 0.5:.1f}" y="{base - h_gone:.1f}" width="{bw - 1:.1f}" height="{h_gone:.1f}" fill="{REMOVED}"/>')
        if keep:
            out.append(f'<rect x="{x + 0.5:.1f}" y="{base - h_gone - h_keep:.1f}" width="{bw - 1:.1f}" height="{h_keep:.1f}" fill="{KEPT}"/>')
    out.append(f'<line x1="0" y1="{height - 1.5}" x2="{width}" y2="{height - 1.5}" stroke="#c9ced6"/></svg>')
    return "".join(out)


def before_after_bar(before: float, after: float) -> str:
    """Two thin bars, before (grey, full) and after (blue, to scale), for a summary card."""
    top = max(before, after) or 1.0
    w = 200
    return (
        f'<svg class="mini" viewBox="0 0 {w} 22" width="100%" height="22" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<rect x="0" y="2" width="{before / top * w:.1f}" height="7" rx="3" fill="#cdd3dc"/>'
        f'<rect x="0" y="13" width="{after / top * w:.1f}" height="7" rx="3" fill="{KEPT}"/></svg>'
    )
