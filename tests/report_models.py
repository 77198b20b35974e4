"""A small hand-built ONNX model with two prunable groups and an operator without a rule."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def cumsum_model() -> onnx.ModelProto:
    """x -> stem(8) -> Relu -> mid(12) -> Relu -> body(16) -> CumSum(axis 1) -> head(4) -> y.

    ``stem`` and ``mid`` are prunable groups; ``body``'s channels are stopped by CumSum
    (no propagation rule), ``head``'s by the graph output.
    """
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    inits = {
        "stem.weight": w(8, 3, 3, 3), "stem.bias": w(8),
        "mid.weight": w(12, 8, 3, 3), "mid.bias": w(12),
        "body.weight": w(16, 12, 1, 1),
        "head.weight": w(4, 16, 1, 1),
        "axis": np.array(1, dtype=np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "stem.weight", "stem.bias"], ["s"], name="/stem/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["s"], ["s1"], name="/stem/Relu"),
        helper.make_node("Conv", ["s1", "mid.weight", "mid.bias"], ["m"], name="/mid/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["m"], ["m1"], name="/mid/Relu"),
        helper.make_node("Conv", ["m1", "body.weight"], ["b"], name="/body/Conv"),
        helper.make_node("CumSum", ["b", "axis"], ["c"], name="/body/CumSum"),
        helper.make_node("Conv", ["c", "head.weight"], ["y"], name="/head/Conv"),
    ]
    graph = helper.make_graph(
        nodes, "cumsum_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
