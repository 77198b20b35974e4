"""Small ONNX graphs built by hand for rule tests: a producer, the op under test, a consumer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def weight(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: dict[str, Sequence[int]],
    outputs: Sequence[str],
    inits: dict[str, np.ndarray],
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes),
        "rule_test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_sandwich(
    middle: Sequence[onnx.NodeProto],
    mid_channels: int,
    inits: dict[str, np.ndarray] | None = None,
    x_shape: Sequence[int] = (1, 3, 8, 8),
    c: int = 8,
    opset: int = 17,
    spatial: int = 2,
) -> onnx.ModelProto:
    """x -> Conv(c) -> "a" -> middle -> "b" (mid_channels) -> Conv(5) -> y."""
    k = (3,) * spatial
    x_shape = tuple(x_shape[:2]) + (8,) * spatial
    all_inits = {"w1": weight(c, x_shape[1], *k), "b1": weight(c), "w2": weight(5, mid_channels, *k)}
    all_inits.update(inits or {})
    pads = [1] * (2 * spatial)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=pads),
        *middle,
        helper.make_node("Conv", ["b", "w2"], ["y"], pads=pads),
    ]
    return make_model(nodes, {"x": x_shape}, ["y"], all_inits, opset)


def linear_sandwich(
    middle: Sequence[onnx.NodeProto], mid_features: int, inits: dict[str, np.ndarray] | None = None,
    x_shape: Sequence[int] = (2, 6, 12), c: int = 16, opset: int = 17,
) -> onnx.ModelProto:
    """x (B,S,F) -> MatMul(c) + bias -> "a" -> middle -> "b" -> MatMul(7) -> y."""
    all_inits = {"w1": weight(x_shape[-1], c), "b1": weight(c), "w2": weight(mid_features, 7)}
    all_inits.update(inits or {})
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["a0"]),
        helper.make_node("Add", ["a0", "b1"], ["a"]),
        *middle,
        helper.make_node("MatMul", ["b", "w2"], ["y"]),
    ]
    return make_model(nodes, {"x": x_shape}, ["y"], all_inits, opset)
