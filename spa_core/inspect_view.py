"""Human and machine views of an analysis (``spa inspect``)."""

from __future__ import annotations

from typing import Any

from .analysis import Analysis


def _consumers(analysis: Analysis, members: list[tuple[str, int]]) -> list[str]:
    """Nodes that read the group's parameters (where the channels go)."""
    graph = analysis.graph
    names = []
    for value, _ in members:
        for node_index, _ in graph.consumers.get(value, []):
            name = graph.node_name(node_index)
            if name not in names:
                names.append(name)
    return names


def analysis_to_dict(analysis: Analysis) -> dict[str, Any]:
    return {
        "groups": [
            {
                "id": g.id,
                "size": g.size,
                "members": [f"{n}:{a}" for n, a in g.members],
                "nodes": _consumers(analysis, g.members),
            }
            for g in analysis.groups
        ],
        "prunable_channels": analysis.n_channels,
        "unknown_operators": dict(analysis.unknown_ops),
        "barriers": dict(analysis.blocked_reasons),
    }


def analysis_table(analysis: Analysis, max_members: int = 4) -> str:
    lines = [f"{len(analysis.groups)} channel groups, {analysis.n_channels} prunable channels", ""]
    lines.append(f"{'group':>5}  {'size':>5}  {'members':>7}  nodes")
    for g in analysis.groups:
        nodes = _consumers(analysis, g.members)
        shown = ", ".join(nodes[:max_members]) + (f", ... (+{len(nodes) - max_members})" if len(nodes) > max_members else "")
        lines.append(f"{g.id:>5}  {g.size:>5}  {len(g.members):>7}  {shown}")
    lines.append("")
    if analysis.unknown_ops:
        lines.append("unsupported operators (barriers):")
        for op, n in sorted(analysis.unknown_ops.items()):
            lines.append(f"  {op}: {n} node(s)")
    lines.append("barriers (channels holding parameters that cannot be pruned, by reason):")
    if not analysis.blocked_reasons:
        lines.append("  none")
    for reason, n in analysis.blocked_reasons.most_common():
        lines.append(f"  {reason}: {n}")
    return "\n".join(lines)
