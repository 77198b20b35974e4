"""A self-contained HTML report of one pruning (``spa prune --report``, ``spa report``).

One file, no scripts, no fonts or images from the network: CSS is inline and every
chart is inline SVG (:mod:`spa_core.report_charts`). It shows the summary (parameters,
MACs, ONNX size, measured onnxruntime latency before and after), the channel width of
every layer, the channel groups with their layers and score distributions, the barriers
with their operators, and the command and options used. Written atomically.
"""

from __future__ import annotations

import json
import statistics
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .inspect_view import CARRIES, CONSUMES, PRODUCES, shorten
from .io import atomic_write_text
from .report_charts import before_after_bar, human, score_histogram, width_chart
from .report_data import GroupRow, Latency, ReportData, collect
from .report_style import CSS

if TYPE_CHECKING:
    import onnx

    from .api import PruneResult
    from .plan import Plan

def _pct(before: float, after: float) -> str:
    """A change as ``<span class="delta">-73.8%</span>``, green when smaller, red when larger."""
    if not before:
        return ""
    change = (after - before) / before
    text = f"{change:+.1%}".replace("-", "\u2212")
    return f'<span class="delta{" worse" if change > 0 else ""}">{text}</span>'


def _card(label: str, after: str, before: str, exact: str, delta: str, bar: str, note: str = "") -> str:
    return (
        f'<div class="card"><div class="card-label">{label}</div>'
        f'<div class="card-value">{after}{delta}</div>'
        f'<div class="card-from">from {before}</div>{bar}'
        f'<div class="exact">{exact}</div>'
        + (f'<div class="note">{note}</div>' if note else "")
        + "</div>"
    )


def _latency_card(latency: tuple[Latency, Latency] | None) -> str:
    if latency is None:
        return _card("Latency", "-", "-", "not measured", "", "")
    a, b = latency
    if a.median_ms is None or b.median_ms is None:
        reason = escape(a.error or b.error or "")
        return _card("Latency (onnxruntime)", "-", "-", "not measured", "", "", reason)
    speedup = a.median_ms / b.median_ms if b.median_ms else 0.0
    verdict = f"{speedup:.2f}\u00d7 faster" if speedup >= 1 else f"{1 / speedup:.2f}\u00d7 slower" if speedup else "-"
    runs = f"median of {len(a.runs)} / {len(b.runs)} runs, {a.threads} threads, CPU"
    return _card(
        "Latency (onnxruntime)",
        f"{b.median_ms:.2f} ms",
        f"{a.median_ms:.2f} ms",
        f'<span class="pill{"" if speedup >= 1 else " worse"}">{verdict}</span>',
        f"{_pct(a.median_ms, b.median_ms)}",
        before_after_bar(a.median_ms, b.median_ms),
        runs,
    )


def _summary(d: ReportData) -> str:
    (p0, p1), (m0, m1), (s0, s1) = d.params, d.macs, d.size
    cards = [
        _card("Parameters", human(p1), human(p0), f"{p0:,} \u2192 {p1:,}", f"{_pct(p0, p1)}",
              before_after_bar(p0, p1)),
        _card("MACs", human(m1), human(m0), f"{m0:,} \u2192 {m1:,}", f"{_pct(m0, m1)}",
              before_after_bar(m0, m1)),
        _card("ONNX size", human(s1, "B"), human(s0, "B"), f"{s0:,} \u2192 {s1:,} bytes", f"{_pct(s0, s1)}",
              before_after_bar(s0, s1)),
        _latency_card(d.latency),
    ]
    return '<section class="cards">' + "".join(cards) + "</section>"


def _count(n: int) -> str:
    """``1,558,016`` with ``1.56 M`` under it (the short form only where it helps)."""
    return f"{n:,}" + (f'<div class="muted">{human(n)}</div>' if n >= 10_000 else "")


def _layers_html(layers: list[Any], limit: int = 4) -> str:
    parts = []
    for label, role in (("from", PRODUCES), ("via", CARRIES), ("into", CONSUMES)):
        names = [escape(x.layer) for x in layers if x.role == role]
        if names:
            parts.append(f'<div class="flow"><span class="role">{label}</span> {shorten(names, limit)}</div>')
    return "".join(parts) or '<span class="muted">-</span>'


def _scores_html(g: GroupRow) -> str:
    if not g.scores:
        return '<span class="muted">no scores in the plan</span>'
    s = g.scores
    stats = f"min {min(s):.3g} \u00b7 median {statistics.median(s):.3g} \u00b7 max {max(s):.3g}"
    return score_histogram(s, g.kept) + f'<div class="stats">{stats}</div>'


def _group_table(d: ReportData) -> str:
    rows = []
    for g in d.groups:
        frac = g.n_kept / g.size if g.size else 1.0
        members = "".join(f"<li>{escape(m)}</li>" for m in g.members)
        nodes = "".join(f"<li>{escape(x.layer)} <span class='muted'>({escape(x.op)}, {x.role}; {escape(x.node)})</span></li>"
                        for x in g.layers)
        rows.append(
            f'<tr id="group-{g.id}"><td class="num">{g.id}</td>'
            f'<td class="num"><b>{g.n_kept:,}</b> / {g.size:,}'
            f'<div class="keepbar"><span style="width:{frac * 100:.1f}%"></span></div></td>'
            f'<td class="num">{g.size - g.n_kept:,}<div class="muted">{1 - frac:.0%}</div></td>'
            f'<td class="num">{_count(g.params_removed)}</td><td class="num">{_count(g.macs_removed)}</td>'
            f'<td>{_layers_html(g.layers)}<details><summary>{len(g.layers)} layers, {len(g.members)} members</summary>'
            f'<ul class="nodes">{nodes}</ul><ul class="members">{members}</ul></details></td>'
            f"<td>{_scores_html(g)}</td></tr>"
        )
    head = ("<tr><th>group</th><th>channels kept</th><th>removed</th><th>params removed</th>"
            "<th>MACs removed</th><th>layers: where the channels come from and go</th>"
            "<th>criterion scores <span class='key kept'></span>kept <span class='key gone'></span>removed</th></tr>")
    return f'<table class="groups"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _barriers(d: ReportData) -> str:
    parts = []
    if d.unknown:
        rows = "".join(
            f"<tr><td><code>{escape(op)}</code></td><td class='num'>{len(nodes)}</td>"
            f"<td>{escape(shorten(nodes, 6))}</td></tr>"
            for op, nodes in d.unknown.items()
        )
        parts.append(
            "<h3>Unsupported operators</h3><p class='muted'>No propagation rule: every channel that "
            "passes through them is left alone.</p>"
            f"<table class='plain'><thead><tr><th>operator</th><th>nodes</th><th>node names</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    else:
        parts.append("<p class='ok'>\u2713 Every operator in the model has a propagation rule.</p>")
    if d.barriers:
        total = sum(b.channels for b in d.barriers)
        rows = "".join(
            f"<tr><td><code>{escape(b.operator) or '-'}</code></td><td>{escape(b.reason)}</td>"
            f"<td class='num'>{b.channels:,}</td><td class='names'>{escape(shorten(b.nodes, 4)) if b.nodes else ''}</td></tr>"
            for b in d.barriers
        )
        parts.append(
            f"<h3>Channels left whole</h3><p class='muted'>{total:,} channels holding parameters cannot be "
            "pruned; each is counted once, under the first barrier that stopped it.</p>"
            "<table class='plain'><thead><tr><th>operator</th><th>reason</th><th class='num'>channels</th>"
            f"<th>nodes / values</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        parts.append("<p class='ok'>\u2713 No barriers: every channel holding parameters can be pruned.</p>")
    return "".join(parts)


def _command(d: ReportData) -> str:
    parts = []
    if d.command:
        parts.append(f"<h3>Command</h3><pre class='command'>{escape(d.command)}</pre>")
    items = "".join(
        f"<div><dt>{escape(str(k))}</dt><dd><code>{escape(json.dumps(v))}</code></dd></div>"
        for k, v in d.options.items()
    )
    parts.append(f"<h3>Options recorded in the plan</h3><dl class='options'>{items}</dl>")
    return "".join(parts)


def _details(d: ReportData) -> str:
    timing = "".join(f"<tr><th>{escape(k)}</th><td>{v:.2f} s</td></tr>" for k, v in d.timings.items())
    env = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in d.environment.items())
    cols = []
    if timing:
        cols.append(f"<div><h3>Time taken</h3><table class='kv'><tbody>{timing}</tbody></table></div>")
    cols.append(f"<div><h3>Environment</h3><table class='kv'><tbody>{env}</tbody></table></div>")
    return "<div class='two'>" + "".join(cols) + "</div>"


def render_html(d: ReportData) -> str:
    """The whole page for ``d``."""
    total, kept = d.channels
    opts = d.options
    facts = [
        f"criterion <b>{escape(str(opts.get('criterion', '?')))}</b>",
        f"ratio <b>{opts.get('ratio', '?')}</b>" + (" (global ranking)" if opts.get("global_ranking") else ""),
        f"<b>{len(d.groups)}</b> channel groups",
        f"<b>{total - kept:,}</b> of {total:,} channels removed",
    ]
    changed = sum(1 for r in d.layers if r.after != r.before)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SPA pruning report: {escape(d.title)}</title>
<style>{CSS}</style></head>
<body><main>
<header><div class="kicker">SPA &middot; pruning report</div><h1>{escape(d.title)}</h1>
<p class="facts">{" &middot; ".join(facts)}</p></header>
{_summary(d)}
<section><h2>Channel width of each layer</h2>
<p class="muted">{len(d.layers)} Conv / Gemm / MatMul layers, {changed} of them narrower. Hover a bar for the exact numbers.</p>
<div class="panel">{width_chart(d.layers)}</div></section>
<section><h2>Channel groups</h2>
<p class="muted">Channels coupled by residual additions, concatenations and grouped convolutions are removed together;
a group's parameters and MACs removed are what pruning that group alone removes.</p>
<div class="panel scroll">{_group_table(d)}</div></section>
<section><h2>Barriers</h2><div class="panel">{_barriers(d)}</div></section>
<section><h2>Command and options</h2><div class="panel">{_command(d)}</div></section>
<section class="panel">{_details(d)}</section>
<footer>Generated by SPA {escape(d.environment.get("SPA", ""))} on {escape(d.created)}.
Self-contained: no network needed to view it.</footer>
</main></body></html>
"""


def render_report(
    result: PruneResult,
    *,
    command: str | None = None,
    plan: Plan | None = None,
    pruned: onnx.ModelProto | None = None,
    title: str | None = None,
    measure: bool = True,
) -> str:
    """The report page for ``result`` as a string (see :func:`report_data.collect`)."""
    data = collect(result, command=command, plan=plan, pruned=pruned, title=title, measure=measure)
    return render_html(data)


def write_report(
    path: str | Path,
    result: PruneResult,
    command: str | None = None,
    **options: Any,
) -> None:
    """Render the report for ``result`` and write it to ``path`` atomically."""
    atomic_write_text(path, render_report(result, command=command, **options))
