"""What a pruning did: parameters and MACs before and after, per group and in total."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from .analysis import Analysis
from .graph import Graph
from .macs import count_macs
from .rules.context import SurgeryView


@dataclass
class GroupReport:
    """One group's share: what pruning only this group's chosen channels removes."""

    id: int
    channels_before: int
    channels_after: int
    members: list[str]
    params_removed: int = 0
    macs_removed: int = 0


@dataclass
class Report:
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    groups: list[GroupReport] = field(default_factory=list)
    unknown_operators: dict[str, int] = field(default_factory=dict)
    barriers: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    layer_widths: list[dict[str, Any]] = field(default_factory=list)

    @property
    def macs_reduction(self) -> float:
        return 1.0 - self.macs_after / self.macs_before if self.macs_before else 0.0

    @property
    def params_reduction(self) -> float:
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_reduction"] = self.macs_reduction
        d["params_reduction"] = self.params_reduction
        return d

    def summary(self) -> str:
        removed = sum(g.channels_before - g.channels_after for g in self.groups)
        total = sum(g.channels_before for g in self.groups)
        return (
            f"parameters {self.params_before:,} -> {self.params_after:,} "
            f"(-{self.params_reduction:.1%}); MACs {self.macs_before:,} -> {self.macs_after:,} "
            f"(-{self.macs_reduction:.1%}); channels removed {removed} of {total} in {len(self.groups)} groups"
        )


def _shape_after(graph: Graph, view: SurgeryView) -> Callable[[str], tuple[int, ...]]:
    """The shape of every value once ``view``'s channels are removed."""

    def shape(name: str) -> tuple[int, ...]:
        return tuple(view.new_size(name, a) for a in range(len(graph.shapes[name])))

    return shape


def _nodes_by_value(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Indices of the nodes that read or write each value."""
    found: dict[str, list[int]] = {}
    for i, node in enumerate(model.graph.node):
        for name in {*node.input, *node.output}:
            if name:
                found.setdefault(name, []).append(i)
    return found


def _group_share(
    analysis: Analysis, view: SurgeryView, dims: Iterable[tuple[str, int]], params: set[str],
    readers: dict[str, list[int]],
) -> tuple[int, int]:
    """Parameters and MACs that removing one group's channels (``view``) saves.

    Only the values the group lives in change shape, so only those parameters and the
    nodes touching them are counted (once over the whole graph per group was quadratic:
    4 s of a ResNet-200's pruning).
    """
    graph = analysis.graph
    old_shape, new_shape = graph.shapes.__getitem__, _shape_after(graph, view)
    values = {name for name, _ in dims}
    n_params = sum(int(np.prod(old_shape(n), dtype=np.int64)) - int(np.prod(new_shape(n), dtype=np.int64))
                   for n in values & params)
    nodes = sorted({i for name in values for i in readers.get(name, ())})
    macs = count_macs(graph.model, old_shape, nodes)[0] - count_macs(graph.model, new_shape, nodes)[0]
    return n_params, macs


def build_report(
    analysis: Analysis,
    view: SurgeryView,
    kept_counts: dict[int, int],
    removed: np.ndarray | None = None,
) -> Report:
    """Totals before/after, per-layer widths and, given ``removed``, each group's share."""
    from .surgery import surgery_view

    graph = analysis.graph
    old_shape, new_shape = graph.shapes.__getitem__, _shape_after(graph, view)
    params = [n for n in graph.initializers if graph.is_parameter(n)]
    params_before = sum(int(np.prod(old_shape(n), dtype=np.int64)) for n in params)
    params_after = sum(int(np.prod(new_shape(n), dtype=np.int64)) for n in params)
    macs_before, per_node_before = count_macs(graph.model, old_shape)
    macs_after, per_node_after = count_macs(graph.model, new_shape)
    widths = []
    for i, node in enumerate(graph.model.graph.node):
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and node.output[0] in graph.shapes:
            out = node.output[0]
            axis = 1 if node.op_type.startswith("Conv") else len(graph.shapes[out]) - 1
            name = graph.node_name(i)
            widths.append(
                {
                    "node": name,
                    "op": node.op_type,
                    "before": graph.shapes[out][axis],
                    "after": view.new_size(out, axis),
                    "macs_before": per_node_before.get(name, 0),
                    "macs_after": per_node_after.get(name, 0),
                }
            )
    groups = []
    readers = _nodes_by_value(graph.model) if removed is not None else {}
    parameters = set(params)
    for g in analysis.groups:
        entry = GroupReport(g.id, g.size, kept_counts.get(g.id, g.size), [f"{n}:{a}" for n, a in g.members])
        if removed is not None and entry.channels_after < entry.channels_before:
            only = np.zeros_like(removed)
            only[g.classes] = removed[g.classes]
            entry.params_removed, entry.macs_removed = _group_share(
                analysis, surgery_view(analysis, only), g.dims, parameters, readers
            )
        groups.append(entry)
    return Report(
        params_before=params_before,
        params_after=params_after,
        macs_before=macs_before,
        macs_after=macs_after,
        groups=groups,
        unknown_operators=dict(analysis.unknown_ops),
        barriers=dict(analysis.blocked_reasons),
        layer_widths=widths,
    )
