"""Rewrite an MXNet symbol's width attributes after its parameters were sliced (plain Python).

An MXNet symbol JSON records layer widths as attributes (``Convolution.num_filter``,
``FullyConnected.num_hidden``, ``num_group``...), and every parameter node records its
``__shape__``. After the parameters are pruned these must be rewritten or the pruned
network does not bind. Each operator's rewrite is a :class:`WidthRule` in ``RULES``,
keyed by MXNet op name; operators whose widths follow from their inputs (BatchNorm,
LayerNorm, activations...) need no rule. The caller checks the result with MXNet's
shape inference, so an operator with a width this registry does not know fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]


class SymbolRewriteError(ValueError):
    """A width attribute cannot be derived from the pruned parameters."""


@dataclass
class NodeView:
    """One operator node of the symbol JSON, with the shapes of its parameter inputs."""

    node: dict[str, Any]
    param_names: list[str | None]  # per input: parameter name, or None for a computed input
    old_shapes: Mapping[str, Shape]
    new_shapes: Mapping[str, Shape]
    groups: Mapping[str, int]  # weight parameter name -> group count read from the pruned ONNX

    @property
    def attrs(self) -> dict[str, str]:
        return attrs_of(self.node)

    def param(self, index: int) -> str | None:
        return self.param_names[index] if index < len(self.param_names) else None

    def shapes(self, index: int) -> tuple[Shape, Shape] | None:
        """(old, new) shape of parameter input ``index``; None when it is not a parameter."""
        name = self.param(index)
        if name is None or name not in self.old_shapes:
            return None
        return self.old_shapes[name], self.new_shapes.get(name, self.old_shapes[name])


WidthRule = Callable[[NodeView], dict[str, str]]
RULES: dict[str, WidthRule] = {}


def rule(*ops: str) -> Callable[[WidthRule], WidthRule]:
    """Register a width rule for the MXNet ops ``ops``."""

    def register(fn: WidthRule) -> WidthRule:
        for op in ops:
            RULES[op] = fn
        return fn

    return register


def attrs_of(node: dict[str, Any]) -> dict[str, str]:
    """The node's attribute dict (``attrs``; ``attr``/``param`` in JSON from MXNet < 1.0)."""
    for key in ("attrs", "attr", "param"):
        if key in node:
            return node[key]
    node["attrs"] = {}
    return node["attrs"]


def _new_group(view: NodeView, old: Shape, new: Shape, out_axis: int) -> int:
    """The group count after pruning: read from the pruned ONNX, else whole groups removed."""
    weight = view.param(1)
    if weight is not None and weight in view.groups:
        return int(view.groups[weight])
    group = int(view.attrs.get("num_group", "1"))
    if group == 1 or (old == new):
        return group
    per_group = old[out_axis] // group
    if old[1 - out_axis] != new[1 - out_axis] or new[out_axis] % per_group:
        raise SymbolRewriteError(
            f"{view.node['name']}: cannot tell the new num_group of a grouped convolution "
            "pruned inside its groups without the pruned ONNX model"
        )
    return new[out_axis] // per_group


@rule("Convolution")
def _convolution(view: NodeView) -> dict[str, str]:
    """Weight (O, I/g, k...): ``num_filter`` = O; ``num_group`` from ONNX ``group``."""
    shapes = view.shapes(1)
    if shapes is None:
        return {}
    old, new = shapes
    return {"num_filter": str(new[0]), "num_group": str(_new_group(view, old, new, 0))}


@rule("Deconvolution")
def _deconvolution(view: NodeView) -> dict[str, str]:
    """Weight (I, O/g, k...): ``num_filter`` = O/g * g."""
    shapes = view.shapes(1)
    if shapes is None:
        return {}
    old, new = shapes
    group = _new_group(view, old, new, 0)
    return {"num_filter": str(new[1] * group), "num_group": str(group)}


@rule("FullyConnected")
def _fully_connected(view: NodeView) -> dict[str, str]:
    """Weight (out, in): ``num_hidden`` = out."""
    shapes = view.shapes(1)
    return {} if shapes is None else {"num_hidden": str(shapes[1][0])}


@rule("Embedding")
def _embedding(view: NodeView) -> dict[str, str]:
    """Weight (input_dim, output_dim)."""
    shapes = view.shapes(1)
    if shapes is None:
        return {}
    return {"input_dim": str(shapes[1][0]), "output_dim": str(shapes[1][1])}


def _format_shape(old_text: str | None, new: Shape) -> str:
    """``__shape__`` text; a dimension MXNet left unknown (0) stays unknown."""
    old = _parse_shape(old_text) if old_text else None
    dims = [0 if old is not None and i < len(old) and old[i] == 0 else d for i, d in enumerate(new)]
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _parse_shape(text: str) -> Shape:
    return tuple(int(t) for t in text.strip("()[] ").split(",") if t.strip())


def rewrite_symbol(
    graph: dict[str, Any],
    old_shapes: Mapping[str, Shape],
    new_shapes: Mapping[str, Shape],
    groups: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Rewrite ``graph`` (a parsed ``-symbol.json``) in place for the pruned parameters.

    :param old_shapes: parameter name -> shape before pruning (every parameter).
    :param new_shapes: parameter name -> shape after pruning (changed ones suffice).
    :param groups: weight parameter name -> group count of its ONNX Conv after pruning.
    :return: the changes, ``{"node", "attr", "old", "new"}`` each, for the report.
    """
    nodes = graph["nodes"]
    changes: list[dict[str, Any]] = []

    def set_attr(node: dict[str, Any], key: str, value: str) -> None:
        attrs = attrs_of(node)
        if attrs.get(key) != value:
            changes.append({"node": node["name"], "attr": key, "old": attrs.get(key), "new": value})
            attrs[key] = value

    for node in nodes:
        name = node["name"]
        if node["op"] == "null":
            if name in new_shapes and "__shape__" in attrs_of(node):
                set_attr(node, "__shape__", _format_shape(attrs_of(node)["__shape__"], new_shapes[name]))
            continue
        width_rule = RULES.get(node["op"])
        if width_rule is None:
            continue
        param_names = [
            nodes[src[0]]["name"] if nodes[src[0]]["op"] == "null" and nodes[src[0]]["name"] in old_shapes else None
            for src in node["inputs"]
        ]
        view = NodeView(node, param_names, old_shapes, new_shapes, groups or {})
        for key, value in width_rule(view).items():
            if key == "num_group" and key not in view.attrs and value == "1":
                continue
            set_attr(node, key, value)
    return changes
