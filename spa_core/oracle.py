"""The correctness oracle: removing channels must equal zeroing them.

The reference is the original (prepared) model in which every node that *consumes* a
removed channel (reads it and does not pass it on) sees zeros in that channel's
slice. Pruning is correct when the pruned model's outputs equal the reference's, to
float tolerance, for any input.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .analysis import Analysis
from .graph import FLOAT_TYPES
from .runtime import random_inputs, run_model


def zeroed_reference(analysis: Analysis, removed: np.ndarray) -> onnx.ModelProto:
    """The original model with removed channels zeroed at their consumers' inputs."""
    graph = analysis.graph
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    new_nodes = []
    for index, node in enumerate(model.graph.node):
        passed: set[int] = set()
        for out in node.output:
            for axis in range(len(graph.shapes.get(out, ()))):
                passed.update(np.unique(analysis.dim_labels((out, axis))).tolist())
        for k, name in enumerate(node.input):
            if not name or name not in graph.shapes or graph.dtypes.get(name) not in FLOAT_TYPES:
                continue
            shape = graph.shapes[name]
            mask = None
            for axis in range(len(shape)):
                labels = analysis.dim_labels((name, axis))
                zero = removed[labels]
                if (index, k, axis) not in analysis.internal_reads:
                    zero &= ~np.isin(labels, list(passed))
                if not zero.any():
                    continue
                axis_mask = (~zero).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(len(shape))])
                mask = axis_mask if mask is None else mask * axis_mask
            if mask is None:
                continue
            mask_name = f"__spa_mask_{index}_{k}"
            masked = f"{name}__spa_masked_{index}_{k}"
            np_type = helper.tensor_dtype_to_np_dtype(graph.dtypes[name])
            model.graph.initializer.append(numpy_helper.from_array(mask.astype(np_type), mask_name))
            new_nodes.append(helper.make_node("Mul", [name, mask_name], [masked]))
            node.input[k] = masked
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    del model.graph.value_info[:]
    return model


def compare_outputs(
    reference: onnx.ModelProto,
    pruned: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
) -> float:
    """Largest relative difference between two models' outputs on ``feeds``."""
    ref = run_model(reference, feeds)
    out = run_model(pruned, feeds)
    worst = 0.0
    for name, expected in ref.items():
        got = out[name]
        if np.shape(got) != np.shape(expected):
            return float("inf")
        expected = np.asarray(expected, dtype=np.float64)
        scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1e-6)
        diff = float(np.abs(np.asarray(got, dtype=np.float64) - expected).max()) if expected.size else 0.0
        worst = max(worst, diff / scale)
    return worst


def oracle_error(analysis: Analysis, removed: np.ndarray, pruned: onnx.ModelProto, seed: int = 0) -> float:
    """Relative error of the pruned model against the zeroed reference on random inputs."""
    graph = analysis.graph
    feeds = random_inputs(graph.model, graph.shapes, graph.dtypes, seed=seed)
    return compare_outputs(zeroed_reference(analysis, removed), pruned, feeds)
