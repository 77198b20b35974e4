"""Consumers of channel groups: the layers whose input columns disappear when channels go.

Removing a group's channels removes whole *input blocks* from every Conv/Gemm/MatMul whose
weight axis that contracts with the activation is a member of the group (Conv weight axis
1, Gemm ``B``'s K axis per ``transB``, MatMul weight axis 0). Each such layer is seen as a
matrix ``W`` of shape ``(out, d)`` acting on input columns ``x`` of length ``d``
(for Conv, the im2col patch: input channel x kernel position), so that OBS can be applied
to it. A grouped convolution is split into one consumer per group (own rows and own
input channels); a depthwise convolution is never a consumer (its contracting axis has size 1:
a channel passes through it to the next layer, which is the consumer).

A consumer may have a *bias carrier*, where a constant output shift can be absorbed: its
own bias, the bias of a following ``Add``, or the running mean of a following
BatchNormalization (``BN(y + b)`` equals ``BN(y)`` with ``mean - b``). OBS then gets a
constant input column of ones, and the compensation of a removed channel's mean goes there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from ..analysis import Analysis


@dataclass
class Consumer:
    """One layer, seen as ``y = W x`` over its input columns.

    Attributes:
        node: index of the node in the prepared graph.
        op: ``Conv``, ``Gemm`` or ``MatMul``.
        weight: initializer name of the weight.
        activation: the value the layer reads (``X``).
        rows: slice of output channels (the whole range unless grouped Conv).
        in_channels: slice of activation channels read (grouped Conv), else whole range.
        kernel: number of kernel positions per input channel (1 for Gemm/MatMul).
        conv: Conv attributes (strides, pads, dilations, kernel shape) or ``None``.
        roots: ``(group id, root index)`` of each contracting position, ``-1`` when the position is
            not prunable.
        trans_b: Gemm with ``transB=1`` (the weight is already ``(out, d)``).
        bias: ``(initializer, factor)`` where an output shift ``s`` of ``W x`` is absorbed by
            adding ``factor * s`` to the initializer, else ``None``.
        out_scale: weight of each output row in the error (``gamma^2 / var`` of a following
            BatchNorm: the error is measured after normalisation), ones otherwise.
    """

    node: int
    op: str
    weight: str
    activation: str
    rows: slice
    in_channels: slice
    kernel: int
    conv: dict | None
    roots: np.ndarray
    trans_b: bool = False
    bias: tuple[str, float] | None = None
    out_scale: np.ndarray | None = None
    blocks: dict[int, np.ndarray] = field(default_factory=dict)
    """Group id -> ``(group size, b)`` columns of each root channel in this consumer."""

    @property
    def d(self) -> int:
        """Number of input columns (without the constant column)."""
        return len(self.roots) * self.kernel

    def matrix(self, weight: np.ndarray) -> np.ndarray:
        """The ``(out, d)`` matrix of this consumer from the full initializer array."""
        if self.op == "Conv":
            return weight[self.rows].reshape(weight[self.rows].shape[0], -1)
        if self.trans_b:
            return weight
        return weight.T

    def removed_columns(self, kept: dict[int, np.ndarray]) -> np.ndarray:
        """Input columns that go when every group keeps the root channels ``kept[gid]``."""
        gone = []
        for gid, cols in self.blocks.items():
            mask = np.ones(len(cols), dtype=bool)
            mask[kept[gid]] = False
            gone.append(cols[mask].ravel())
        return np.concatenate(gone) if gone else np.zeros(0, dtype=np.int64)

    def put(self, weight: np.ndarray, matrix: np.ndarray) -> None:
        """Write ``matrix`` (as from :meth:`matrix`) back into ``weight`` in place."""
        if self.op == "Conv":
            weight[self.rows] = matrix.reshape(weight[self.rows].shape)
        elif self.trans_b:
            weight[...] = matrix
        else:
            weight[...] = matrix.T


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _root_owner(analysis: Analysis) -> tuple[np.ndarray, np.ndarray]:
    """For every class label: its group id and root index (-1 when not in a group)."""
    n = int(analysis.labels.max()) + 1 if analysis.labels.size else 0
    gid = np.full(n, -1, dtype=np.int64)
    idx = np.full(n, -1, dtype=np.int64)
    for g in analysis.groups:
        gid[g.classes] = g.id
        idx[g.classes] = np.arange(g.size)
    return gid, idx


def _bias_carrier(analysis: Analysis, node_index: int, n_out: int) -> tuple[tuple[str, float] | None, np.ndarray | None]:
    """Where an output shift of the node can be absorbed, and the output scale of a following BN."""
    graph = analysis.graph
    inits = graph.initializers
    node = graph.model.graph.node[node_index]
    attrs = _attrs(node)
    out = node.output[0]
    users = graph.consumers.get(out, [])
    user = None
    if len(users) == 1 and out not in graph.output_names:
        user = graph.model.graph.node[users[0][0]], users[0][1]
    carrier, scale = None, None
    if user is not None and user[0].op_type == "BatchNormalization" and user[1] == 0 and len(user[0].output) == 1:
        bn = user[0]
        gamma, var = inits.get(bn.input[1]), inits.get(bn.input[4])
        if gamma is not None and var is not None:
            eps = float(_attrs(bn).get("epsilon", 1e-5))
            scale = (gamma.astype(np.float64) ** 2) / (var.astype(np.float64) + eps)
            if bn.input[3] in inits:
                carrier = (bn.input[3], -1.0)
    own = node.input[2] if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2] else None
    if own is not None and own in inits and inits[own].size == n_out:
        factor = 1.0
        if node.op_type == "Gemm":
            factor = float(attrs.get("alpha", 1.0)) / float(attrs.get("beta", 1.0))
        carrier = (own, factor)
    elif carrier is None and node.op_type == "MatMul" and user is not None and user[0].op_type == "Add":
        other = user[0].input[1 - user[1]]
        if other in inits and inits[other].size == n_out and inits[other].shape[-1] == n_out:
            carrier = (other, 1.0)
    if carrier is not None and len(graph.consumers.get(carrier[0], [])) != 1:
        carrier = None  # shared constant: changing it would change another node
    return carrier, scale


def find_consumers(analysis: Analysis) -> list[Consumer]:
    """Every layer that contracts over a prunable channel, in graph order."""
    graph = analysis.graph
    owner_gid, owner_idx = _root_owner(analysis)
    found = []
    for i, node in enumerate(graph.model.graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        w_name = node.input[1]
        if w_name not in graph.initializers or len(graph.consumers.get(w_name, [])) != 1:
            continue
        w = graph.initializers[w_name]
        attrs = _attrs(node)
        if node.op_type == "Conv":
            axis, parts, kernel = 1, int(attrs.get("group", 1)), int(np.prod(w.shape[2:], dtype=np.int64))
            if w.shape[1] == 1 and parts > 1:
                continue  # depthwise: channels pass through
            conv = {"strides": attrs.get("strides"), "pads": attrs.get("pads"), "dilations": attrs.get("dilations"),
                    "auto_pad": attrs.get("auto_pad", b"NOTSET"), "kernel_shape": list(w.shape[2:])}
        elif node.op_type == "Gemm":
            if attrs.get("transA", 0) or w.ndim != 2:
                continue
            axis, parts, kernel, conv = (1 if attrs.get("transB", 0) else 0), 1, 1, None
        else:
            if w.ndim != 2:
                continue
            axis, parts, kernel, conv = 0, 1, 1, None
        if (w_name, axis) not in analysis.dim_start or node.input[0] not in graph.shapes:
            continue
        labels = analysis.dim_labels((w_name, axis))
        gid = owner_gid[labels]
        if not (gid >= 0).any():
            continue
        roots = np.where(gid >= 0, owner_idx[labels], -1)
        n_out = w.shape[0] if node.op_type == "Conv" else w.shape[1 - axis]
        carrier, scale = _bias_carrier(analysis, i, n_out)
        per_out, per_in = n_out // parts, w.shape[axis]
        for p in range(parts):
            rows = slice(p * per_out, (p + 1) * per_out)
            c = Consumer(
                node=i, op=node.op_type, weight=w_name, activation=node.input[0], rows=rows,
                in_channels=slice(p * per_in, (p + 1) * per_in), kernel=kernel, conv=conv, roots=roots,
                trans_b=node.op_type == "Gemm" and axis == 1, bias=carrier, out_scale=None if scale is None else scale[rows],
            )
            c.blocks = _blocks(gid, roots, kernel, analysis)
            if c.blocks:
                found.append(c)
    return found


def _blocks(gid: np.ndarray, roots: np.ndarray, kernel: int, analysis: Analysis) -> dict[int, np.ndarray]:
    """Columns of each root channel, per group; groups whose channels have blocks of unequal
    size in this consumer (never seen in practice) are left out."""
    out = {}
    for g in np.unique(gid[gid >= 0]).tolist():
        pos = np.nonzero(gid == g)[0]
        r = roots[pos]
        counts = np.bincount(r, minlength=analysis.groups[g].size)
        if counts.min() != counts.max() or counts.min() == 0:
            continue
        order = np.argsort(r, kind="stable")
        positions = pos[order].reshape(analysis.groups[g].size, counts[0])
        cols = (positions[:, :, None] * kernel + np.arange(kernel)[None, None, :]).reshape(len(positions), -1)
        out[g] = cols
    return out
