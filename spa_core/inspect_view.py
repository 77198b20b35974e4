"""Human and machine views of an analysis (``spa inspect``, and the HTML report).

A group's members are summarised by *layer*: each node that reads a member parameter,
named after its parameters (``layer1.0.conv1`` for ``layer1.0.conv1.weight``) or, when
the exporter left them anonymous, after the node. A layer *produces* the group's
channels (its output carries them, its input does not), *consumes* them (where the
channels go: its input carries them, its output does not), or *carries* them (both:
normalisations, depthwise convolutions).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .analysis import Analysis, ChannelGroup

PRODUCES, CONSUMES, CARRIES = "produces", "consumes", "carries"
_OP_REASON = re.compile(r"^([A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?): (.+)$")


@dataclass
class GroupLayer:
    """One node that holds parameters of a group."""

    layer: str
    node: str
    op: str
    role: str
    members: list[str] = field(default_factory=list)


@dataclass
class Barrier:
    """Channel classes with parameters that cannot be pruned, for one reason."""

    operator: str
    reason: str
    channels: int
    nodes: list[str] = field(default_factory=list)


def layer_label(param_names: list[str], node_name: str) -> str:
    """``layer1.0.conv1`` for ``layer1.0.conv1.weight`` (+ ``.bias``); else the node's name."""
    prefixes = {n.rsplit(".", 1)[0] for n in param_names if "." in n}
    if len(prefixes) == 1 and len(param_names) == sum(1 for n in param_names if "." in n):
        prefix = prefixes.pop()
        if prefix and "::" not in prefix and "/" not in prefix:
            return prefix
    return node_name


def group_layers(analysis: Analysis, group: ChannelGroup) -> list[GroupLayer]:
    """The layers holding ``group``'s parameters, in graph order, with their role."""
    graph = analysis.graph
    inits = graph.initializers
    values = {name for name, _ in group.dims}
    member_axes: dict[str, list[int]] = {}
    for name, axis in group.members:
        member_axes.setdefault(name, []).append(axis)
    node_indices = sorted({i for name in member_axes for i, _ in graph.consumers.get(name, [])})
    layers = []
    for index in node_indices:
        node = graph.model.graph.node[index]
        params = [n for n in dict.fromkeys(node.input) if n in member_axes]
        reads = any(x in values for x in node.input if x and x not in inits)
        writes = any(o in values for o in node.output if o)
        role = CARRIES if reads == writes else (CONSUMES if reads else PRODUCES)
        name = graph.node_name(index)
        # A parameter shared by several nodes names none of them: label by the node then.
        shared = any(len({i for i, _ in graph.consumers.get(p, [])}) > 1 for p in params)
        layers.append(
            GroupLayer(
                layer=name if shared else layer_label(params, name),
                node=name,
                op=node.op_type,
                role=role,
                members=[f"{p}:{a}" for p in params for a in member_axes[p]],
            )
        )
    return layers


def _nodes_of(analysis: Analysis, op: str) -> list[str]:
    domain, _, op_type = op.rpartition(":")
    graph = analysis.graph
    return [
        graph.node_name(i)
        for i, n in enumerate(graph.model.graph.node)
        if n.op_type == op_type and (n.domain or "") in ({domain} if domain else {"", "ai.onnx"})
    ]


def barriers(analysis: Analysis) -> list[Barrier]:
    """Every barrier reason with its operator, channel count and the nodes involved.

    For an operator's barrier, ``nodes`` lists every node of that operator type (the
    analysis keeps counts, not positions); for graph inputs and outputs, their names.
    """
    graph = analysis.graph
    rows = []
    for reason, count in analysis.blocked_reasons.most_common():
        match = _OP_REASON.match(reason)
        if match:
            op, detail = match.groups()
            rows.append(Barrier(op, detail, count, _nodes_of(analysis, op)))
        elif reason == "graph input":
            rows.append(Barrier("(graph input)", "the model's inputs keep their shape", count, list(graph.input_names)))
        elif reason == "graph output":
            rows.append(Barrier("(graph output)", "the model's outputs keep their shape", count, list(graph.output_names)))
        else:
            rows.append(Barrier("(user)" if "ignored" in reason else "", reason, count))
    return rows


def unknown_operators(analysis: Analysis) -> dict[str, list[str]]:
    """Operators without a propagation rule, with the names of their nodes."""
    return {op: _nodes_of(analysis, op) for op in sorted(analysis.unknown_ops)}


def _consumers(analysis: Analysis, members: list[tuple[str, int]]) -> list[str]:
    """Nodes that read the group's parameters."""
    graph = analysis.graph
    names = []
    for value, _ in members:
        for node_index, _ in graph.consumers.get(value, []):
            name = graph.node_name(node_index)
            if name not in names:
                names.append(name)
    return names


def analysis_to_dict(analysis: Analysis) -> dict[str, Any]:
    """``spa inspect --json``: groups with their layers, barriers with their operators."""
    groups = []
    for g in analysis.groups:
        layers = group_layers(analysis, g)
        groups.append(
            {
                "id": g.id,
                "size": g.size,
                "members": [f"{n}:{a}" for n, a in g.members],
                "nodes": _consumers(analysis, g.members),
                "produced_by": [x.layer for x in layers if x.role == PRODUCES],
                "consumed_by": [x.layer for x in layers if x.role == CONSUMES],
                "carried_by": [x.layer for x in layers if x.role == CARRIES],
                "layers": [asdict(x) for x in layers],
            }
        )
    return {
        "groups": groups,
        "prunable_channels": analysis.n_channels,
        "unknown_operators": dict(analysis.unknown_ops),
        "unknown_operator_nodes": unknown_operators(analysis),
        "barriers": dict(analysis.blocked_reasons),
        "barrier_details": [asdict(b) for b in barriers(analysis)],
    }


def shorten(items: list[str], limit: int = 4) -> str:
    """``a, b, c, d, +3 more``."""
    if not items:
        return "-"
    shown = ", ".join(items[:limit])
    return shown + (f", +{len(items) - limit} more" if len(items) > limit else "")


def analysis_table(analysis: Analysis, max_members: int = 4) -> str:
    """``spa inspect``: one block per group, then the barriers by operator."""
    n_layers = len({x.node for g in analysis.groups for x in group_layers(analysis, g)})
    lines = [
        f"{len(analysis.groups)} channel groups, {analysis.n_channels:,} prunable channels "
        f"in {n_layers} layers",
        "",
        f"{'group':>5}  {'channels':>8}  {'layers':>6}  where the channels come from and go",
    ]
    pad = " " * 25
    for g in analysis.groups:
        layers = group_layers(analysis, g)
        by_role = {r: [x.layer for x in layers if x.role == r] for r in (PRODUCES, CARRIES, CONSUMES)}
        flow = [
            (label, by_role[role])
            for label, role in (("from", PRODUCES), ("via ", CARRIES), ("into", CONSUMES))
            if by_role[role]
        ]
        first = f"{g.id:>5}  {g.size:>8,}  {len(layers):>6}  "
        if not flow:
            lines.append(first + "(no layer reads its parameters)")
        for k, (label, names) in enumerate(flow):
            lines.append((first if k == 0 else pad) + f"{label} {shorten(names, max_members)}")
    lines.append("")
    unknown = unknown_operators(analysis)
    if unknown:
        lines.append("unsupported operators (no propagation rule; every channel through them is a barrier):")
        for op, nodes in unknown.items():
            lines.append(f"  {op} x{len(nodes)}: {shorten(nodes, max_members)}")
        lines.append("")
    rows = barriers(analysis)
    total = sum(b.channels for b in rows)
    lines.append(f"barriers: {total:,} channels holding parameters cannot be pruned")
    if not rows:
        lines.append("  none")
    else:
        width = max(len(b.operator) for b in rows)
        width = max(width, len("operator"))
        lines.append(f"  {'operator':<{width}}  {'channels':>8}  reason: nodes")
        for b in rows:
            where = f": {shorten(b.nodes, 3)}" if b.nodes else ""
            lines.append(f"  {b.operator:<{width}}  {b.channels:>8,}  {b.reason}{where}")
    return "\n".join(lines)
