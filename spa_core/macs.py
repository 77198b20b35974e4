"""Counting multiply-accumulates of an ONNX graph from static shapes.

Only the operators that dominate cost are counted (Conv, ConvTranspose, Gemm,
MatMul); element-wise work is ignored, as in the usual MACs counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import onnx

ShapeOf = Callable[[str], tuple[int, ...]]
MacCounter = Callable[[onnx.NodeProto, ShapeOf], int]

COUNTERS: dict[str, MacCounter] = {}


def counter(op_type: str) -> Callable[[MacCounter], MacCounter]:
    def register(fn: MacCounter) -> MacCounter:
        COUNTERS[op_type] = fn
        return fn

    return register


@counter("Conv")
def _conv(node: onnx.NodeProto, shape: ShapeOf) -> int:
    w = shape(node.input[1])
    return int(np.prod(shape(node.output[0]), dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))


@counter("ConvTranspose")
def _conv_transpose(node: onnx.NodeProto, shape: ShapeOf) -> int:
    w = shape(node.input[1])
    return int(np.prod(shape(node.input[0]), dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))


@counter("Gemm")
def _gemm(node: onnx.NodeProto, shape: ShapeOf) -> int:
    a = shape(node.input[0])
    trans_a = any(at.name == "transA" and at.i for at in node.attribute)
    k = a[0] if trans_a else a[1]
    return int(np.prod(shape(node.output[0]), dtype=np.int64)) * int(k)


@counter("MatMul")
def _matmul(node: onnx.NodeProto, shape: ShapeOf) -> int:
    a = shape(node.input[0])
    return int(np.prod(shape(node.output[0]), dtype=np.int64)) * int(a[-1])


def count_macs(
    model: onnx.ModelProto, shape: ShapeOf, indices: Iterable[int] | None = None
) -> tuple[int, dict[str, int]]:
    """Total MACs and MACs per node name (of the nodes at ``indices`` only, when given)."""
    per_node = {}
    nodes = model.graph.node
    for i in range(len(nodes)) if indices is None else indices:
        node = nodes[i]
        fn = COUNTERS.get(node.op_type)
        if fn is None:
            continue
        try:
            per_node[node.name or f"{node.op_type}_{i}"] = fn(node, shape)
        except (KeyError, IndexError):
            continue
    return sum(per_node.values()), per_node


def _recurrent(gates: int) -> MacCounter:
    def count(node: onnx.NodeProto, shape: ShapeOf) -> int:
        seq, batch, _ = shape(node.input[0])
        dirs, rows, n_in = shape(node.input[1])
        hidden = shape(node.input[2])[2]
        return int(seq * batch * dirs * rows * (n_in + hidden))

    return count


for _op, _gates in (("LSTM", 4), ("GRU", 3), ("RNN", 1)):
    COUNTERS[_op] = _recurrent(_gates)
