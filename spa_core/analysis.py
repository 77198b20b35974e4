"""Mask propagation: from an ONNX graph to coupled channel groups.

Every element of every dimension of every value is an *atom*. Rules tie atoms that
must be removed together; tied atoms form a *channel class* (a connected component).
A class that holds a parameter element and touches no barrier is prunable. Classes
that span exactly the same set of dimensions form a *group*: a group is what a ratio
applies to and what a criterion scores. A dimension built from several sources
(Concat) holds classes of several groups, one segment each.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .graph import Graph, frozen_names
from .prepare import subgraph_outer_names
from .rules.context import (
    AttributeRewriter,
    Dim,
    InputRewriter,
    MissingShapeError,
    RuleBarrier,
    RuleContext,
)
from .rules.registry import RuleRegistry, full_registry

log = logging.getLogger(__name__)


@dataclass
class ChannelGroup:
    """Coupled channels: removing root channel i removes its atoms in every member."""

    id: int
    classes: np.ndarray
    """Class (component) label of each root channel, in root order."""
    dims: list[Dim]
    """Every dimension the group's channels live in."""
    members: list[Dim]
    """The parameter dimensions among ``dims``: ``(initializer, axis)``."""

    @property
    def size(self) -> int:
        return len(self.classes)


@dataclass
class Analysis:
    """The result of mask propagation over a prepared graph."""

    graph: Graph
    dim_start: dict[Dim, int]
    labels: np.ndarray
    groups: list[ChannelGroup]
    blocked_reasons: Counter = field(default_factory=Counter)
    unknown_ops: Counter = field(default_factory=Counter)
    statistics: set[str] = field(default_factory=set)
    internal_reads: set[tuple[int, int, int]] = field(default_factory=set)
    input_rewriters: list[tuple[int, int, InputRewriter]] = field(default_factory=list)
    attribute_rewriters: list[tuple[int, str, AttributeRewriter]] = field(default_factory=list)

    def dim_labels(self, dim: Dim) -> np.ndarray:
        """Class label of each position along ``dim``."""
        start = self.dim_start[dim]
        return self.labels[start : start + self.graph.shapes[dim[0]][dim[1]]]

    def positions(self, dim: Dim, classes: Iterable[int]) -> np.ndarray:
        """Positions along ``dim`` that belong to any of ``classes``."""
        return np.nonzero(np.isin(self.dim_labels(dim), np.fromiter(classes, dtype=np.int64)))[0]

    @property
    def n_channels(self) -> int:
        return sum(g.size for g in self.groups)


class AnalysisBuilder:
    """Collects ties and blocks from the rules, then computes classes and groups."""

    def __init__(self, graph: Graph, registry: RuleRegistry, pivots: dict[tuple[int, int], int] | None = None):
        self.graph = graph
        self.pivots: dict[tuple[int, int], int] = dict(pivots or {})
        self.pivot_dims: dict[tuple[int, int], Dim] = {}
        self.pivot_counts: dict[tuple[int, int], int] = {}
        self.registry = registry
        self.dim_start: dict[Dim, int] = {}
        self._atom_dim: list[np.ndarray] = []
        self._n = 0
        self._dims: list[Dim] = []
        self._edges_a: list[np.ndarray] = []
        self._edges_b: list[np.ndarray] = []
        self._blocks: list[tuple[int, int, str, bool]] = []
        self.statistics: set[str] = set()
        self.internal_reads: set[tuple[int, int, int]] = set()
        self.input_rewriters: list[tuple[int, int, InputRewriter]] = []
        self.attribute_rewriters: list[tuple[int, str, AttributeRewriter]] = []
        self.unknown_ops: Counter = Counter()
        for name, shape in graph.shapes.items():
            for axis, size in enumerate(shape):
                self.dim_start[(name, axis)] = self._n
                self._atom_dim.append(np.full(size, len(self._dims), dtype=np.int64))
                self._dims.append((name, axis))
                self._n += size

    # ---------------------------------------------------------------- from rules
    def add_tie(self, a: Dim, b: Dim, a_index: np.ndarray, b_index: np.ndarray) -> None:
        if len(a_index) != len(b_index):
            raise RuleBarrier("tie with index arrays of different lengths")
        if len(a_index) == 0:
            return
        self._edges_a.append(self.dim_start[a] + a_index.astype(np.int64))
        self._edges_b.append(self.dim_start[b] + b_index.astype(np.int64))

    def add_block(self, dim: Dim, reason: str, soft: bool = False) -> None:
        if dim not in self.dim_start:
            return
        size = self.graph.shapes[dim[0]][dim[1]]
        self._blocks.append((self.dim_start[dim], size, reason, soft))

    def block_value(self, value: str, reason: str) -> None:
        for axis in range(len(self.graph.shapes.get(value, ()))):
            self.add_block((value, axis), reason)

    # ---------------------------------------------------------------- propagation
    def run_rules(self) -> None:
        g = self.graph
        for index, node in enumerate(g.model.graph.node):
            domain = node.domain if node.domain != "ai.onnx" else ""
            opset = g.opsets.get(domain, 1)
            rule = self.registry.lookup(domain, node.op_type, opset)
            io = [n for n in list(node.input) + list(node.output) if n]
            outer = subgraph_outer_names(node)
            if outer:
                for name in outer:
                    self.block_value(name, f"{node.op_type}: used inside a subgraph")
            if rule is None:
                label = f"{domain}:{node.op_type}" if domain else node.op_type
                self.unknown_ops[label] += 1
                for name in io:
                    self.block_value(name, f"{label}: no propagation rule for this operator")
                continue
            ctx = RuleContext(self, node, index, opset)
            n_in, n_attr = len(self.input_rewriters), len(self.attribute_rewriters)
            try:
                rule.fn(ctx)
            except (MissingShapeError, RuleBarrier, Exception) as exc:  # any rule failure is a barrier
                reason = _failure_reason(exc)
                del self.input_rewriters[n_in:], self.attribute_rewriters[n_attr:]
                for name in io:
                    self.block_value(name, f"{node.op_type}: {reason}")
                continue
            for name in io:
                for axis in range(len(g.shapes.get(name, ()))):
                    if (name, axis) not in ctx.mentioned:
                        self.add_block((name, axis), f"{node.op_type}: axis {axis} of an operand is not mapped")

    def block_boundaries(self, ignore: Iterable[str] = ()) -> None:
        g = self.graph
        for name in g.input_names:
            self.block_value(name, "graph input")
        for name in g.output_names:
            self.block_value(name, "graph output")
        ignore = set(ignore)
        for index, node in enumerate(g.model.graph.node):
            if g.node_name(index) in ignore:
                for name in list(node.input) + list(node.output):
                    if name:
                        self.block_value(name, "ignored by the user")
        for name in ignore & set(g.initializers):
            self.block_value(name, "ignored by the user")
        for name in set(frozen_names(g.model)) & set(g.initializers):
            self.block_value(name, "constant of a rewritten operation")

    # ---------------------------------------------------------------- result
    def finish(self) -> Analysis:
        n = self._n
        if self._edges_a:
            a = np.concatenate(self._edges_a)
            b = np.concatenate(self._edges_b)
        else:
            a = b = np.zeros(0, dtype=np.int64)
        adjacency = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
        n_comp, labels = connected_components(adjacency, directed=False)
        labels = labels.astype(np.int64)

        blocked = np.zeros(n_comp, dtype=bool)
        hard_blocked = np.zeros(n_comp, dtype=bool)
        reason_of = np.full(n_comp, -1, dtype=np.int64)
        reasons: list[str] = []
        reason_id: dict[str, int] = {}
        for start, size, reason, soft in self._blocks:
            comps = np.unique(labels[start : start + size])
            if not soft:
                hard_blocked[comps] = True
            rid = reason_id.setdefault(reason, len(reasons))
            if rid == len(reasons):
                reasons.append(reason)
            fresh = comps[reason_of[comps] < 0]
            reason_of[fresh] = rid
            blocked[comps] = True

        # A channel is a class that holds a parameter element and flows through the
        # network (has an activation element): a kernel's spatial axis or an embedding's
        # vocabulary axis alone is not a channel.
        has_param = np.zeros(n_comp, dtype=bool)
        has_activation = np.zeros(n_comp, dtype=bool)
        param_atoms, activation_atoms = [], []
        initializers = self.graph.initializers
        for (name, axis), start in self.dim_start.items():
            size = self.graph.shapes[name][axis]
            if self.graph.is_parameter(name):
                param_atoms.append(np.arange(start, start + size))
            elif name not in initializers:
                activation_atoms.append(np.arange(start, start + size))
        if param_atoms:
            has_param[labels[np.concatenate(param_atoms)]] = True
        if activation_atoms:
            has_activation[labels[np.concatenate(activation_atoms)]] = True
        has_param &= has_activation

        blocked_reasons: Counter = Counter()
        for comp in np.nonzero(has_param & blocked)[0]:
            blocked_reasons[reasons[reason_of[comp]]] += 1

        prunable = has_param & ~blocked
        self.prunable_classes = prunable
        self.hard_blocked = hard_blocked
        self.final_labels = labels
        groups = self._group(labels, prunable)
        return Analysis(
            graph=self.graph,
            dim_start=self.dim_start,
            labels=labels,
            groups=groups,
            blocked_reasons=blocked_reasons,
            unknown_ops=self.unknown_ops,
            statistics=self.statistics,
            internal_reads=self.internal_reads,
            input_rewriters=self.input_rewriters,
            attribute_rewriters=self.attribute_rewriters,
        )

    def _group(self, labels: np.ndarray, prunable: np.ndarray) -> list[ChannelGroup]:
        """Classes spanning the same set of dimensions form one group."""
        if self._n == 0:
            return []
        atom_dim = np.concatenate(self._atom_dim)
        mask = prunable[labels]
        comps, dims = labels[mask], atom_dim[mask]
        if comps.size == 0:
            return []
        n_dims = len(self._dims)
        keys = np.unique(comps * n_dims + dims)
        key_comp, key_dim = keys // n_dims, keys % n_dims
        splits = np.nonzero(np.diff(key_comp))[0] + 1
        by_signature: dict[tuple[int, ...], list[int]] = {}
        for comp_dims, comp in zip(np.split(key_dim, splits), key_comp[np.r_[0, splits]]):
            by_signature.setdefault(tuple(comp_dims.tolist()), []).append(int(comp))
        groups = []
        for signature, classes in sorted(by_signature.items(), key=lambda kv: kv[0]):
            dims = [self._dims[d] for d in signature]
            root = dims[0]
            start = self.dim_start[root]
            root_labels = labels[start : start + self.graph.shapes[root[0]][root[1]]]
            uniq, first = np.unique(root_labels, return_index=True)
            first_of = dict(zip(uniq.tolist(), first.tolist()))
            ordered = np.array(sorted(classes, key=lambda c: first_of[c]), dtype=np.int64)
            members = [d for d in dims if self.graph.is_parameter(d[0])]
            groups.append(ChannelGroup(len(groups), ordered, dims, members))
        return groups


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, MissingShapeError):
        return f"static shape of '{exc.args[0]}' is unknown"
    if isinstance(exc, RuleBarrier):
        return str(exc)
    log.debug("rule failed", exc_info=exc)
    return f"rule failed ({type(exc).__name__}: {exc})"


def analyze(graph: Graph, ignore: Iterable[str] = (), registry: RuleRegistry | None = None) -> Analysis:
    """Run every rule over ``graph`` and return its channel groups and barriers.

    Reshape runs whose pivot axis ends up with nothing prunable, for a reason other
    than another reshape's pivot choice, get their pivot moved inward and the analysis
    is repeated (at most once per axis of the longest run).
    """
    registry = registry or full_registry()
    pivots: dict[tuple[int, int], int] = {}
    while True:
        builder = AnalysisBuilder(graph, registry, pivots)
        builder.run_rules()
        builder.block_boundaries(ignore)
        analysis = builder.finish()
        moved = False
        for key, dim in builder.pivot_dims.items():
            if pivots.get(key, 0) + 1 >= builder.pivot_counts[key]:
                continue
            start = builder.dim_start[dim]
            labels = builder.final_labels[start : start + graph.shapes[dim[0]][dim[1]]]
            if not builder.prunable_classes[labels].any() and builder.hard_blocked[labels].any():
                pivots[key] = pivots.get(key, 0) + 1
                moved = True
        if not moved:
            return analysis
