"""Data-free inputs: what the consumers' Hessians are built from when there is no data.

* ``gaussian``: standard normal noise at the model's input shape, propagated through the
  model as it is. Simple, but the activations it produces have the wrong scale and mean
  wherever the network expects real images.
* ``bn``: the same noise, propagated with every BatchNormalization normalising by the
  *batch* statistics of the synthetic inputs (as in training mode). The output of every
  BatchNorm then has, per channel, the mean ``beta`` and variance ``gamma²`` that it has on
  the training data (which is what its running statistics record), so every layer after it
  sees inputs at the right scale and offset, with the cross-channel structure the trained
  weights impose. The batch statistics are then frozen into a *proxy* model (the
  original with the running mean/var replaced), which reproduces those activations in
  inference mode. This is the BatchNorm-statistics matching of ZeroQ (Cai et al., CVPR
  2020) without the input optimisation, which would need gradients through the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph import Graph
from .hessian import Runner, batches


def gaussian_feeds(graph: Graph, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` standard normal samples for every float input (integer inputs: small ints)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in graph.input_names:
        shape = (n, *graph.shapes[name][1:])
        dtype = helper.tensor_dtype_to_np_dtype(graph.dtypes.get(name, onnx.TensorProto.FLOAT))
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def _batch_norms(model: onnx.ModelProto, inits: Mapping[str, np.ndarray]) -> list[int]:
    """Inference-mode BatchNormalization nodes whose statistics are initializers."""
    found = []
    for i, node in enumerate(model.graph.node):
        if node.op_type != "BatchNormalization" or len(node.input) < 5:
            continue
        training = any(a.name == "training_mode" and a.i for a in node.attribute)
        if not training and all(name in inits for name in node.input[1:5]):
            found.append(i)
    return found


def batch_stat_model(graph: Graph) -> tuple[onnx.ModelProto, dict[int, tuple[str, str]]]:
    """The model with every BatchNorm using batch statistics; also outputs those statistics.

    :return: the model and, per BatchNorm node index, the names of its batch mean and
        batch variance outputs (shape ``(1, C, 1, ...)``).
    """
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    inits = graph.initializers
    opset = graph.opsets.get("", 1)
    stats: dict[int, tuple[str, str]] = {}
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    bns = set(_batch_norms(model, inits))
    for i, node in enumerate(model.graph.node):
        if i not in bns or node.input[0] not in graph.shapes:
            new_nodes.append(node)
            continue
        rank = len(graph.shapes[node.input[0]])
        axes = [0, *range(2, rank)]
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        p = f"__spa_bnstat{i}"
        bshape = [1, -1] + [1] * (rank - 2)
        dtype = inits[node.input[1]].dtype
        new_inits += [
            numpy_helper.from_array(inits[node.input[1]].reshape(bshape), f"{p}_scale"),
            numpy_helper.from_array(inits[node.input[2]].reshape(bshape), f"{p}_bias"),
            numpy_helper.from_array(np.array(eps, dtype=dtype), f"{p}_eps"),
        ]

        def reduce_mean(x: str, out: str, p: str = p, axes: list[int] = axes) -> onnx.NodeProto:
            if opset >= 18:
                return helper.make_node("ReduceMean", [x, f"{p}_axes"], [out], keepdims=1)
            return helper.make_node("ReduceMean", [x], [out], axes=axes, keepdims=1)

        if opset >= 18:
            new_inits.append(numpy_helper.from_array(np.array(axes, dtype=np.int64), f"{p}_axes"))
        x = node.input[0]
        new_nodes += [
            reduce_mean(x, f"{p}_mean"),
            helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_centred"]),
            helper.make_node("Mul", [f"{p}_centred", f"{p}_centred"], [f"{p}_sq"]),
            reduce_mean(f"{p}_sq", f"{p}_var"),
            helper.make_node("Add", [f"{p}_var", f"{p}_eps"], [f"{p}_vareps"]),
            helper.make_node("Sqrt", [f"{p}_vareps"], [f"{p}_std"]),
            helper.make_node("Div", [f"{p}_centred", f"{p}_std"], [f"{p}_norm"]),
            helper.make_node("Mul", [f"{p}_norm", f"{p}_scale"], [f"{p}_scaled"]),
            helper.make_node("Add", [f"{p}_scaled", f"{p}_bias"], [node.output[0]]),
        ]
        stats[i] = (f"{p}_mean", f"{p}_var")
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    model.graph.initializer.extend(new_inits)
    del model.graph.value_info[:]
    return model, stats


def bn_statistics(graph: Graph, feeds: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Running mean/var initializers -> their values measured on ``feeds`` in batch-stat mode.

    Batches of ``batch`` samples are normalised by their own statistics; the frozen values
    are the mean over batches of the mean and of the second moment.
    """
    model, stats = batch_stat_model(graph)
    if not stats:
        return {}
    runner = Runner(model, [name for pair in stats.values() for name in pair])
    sums: dict[int, list[np.ndarray]] = {i: [0.0, 0.0] for i in stats}
    count = 0
    for feed in batches(feeds, batch):
        values = runner(feed)
        for i, (m, v) in stats.items():
            mean = values[m].reshape(-1).astype(np.float64)
            sums[i][0] = sums[i][0] + mean
            sums[i][1] = sums[i][1] + values[v].reshape(-1) + mean**2
        count += 1
    nodes = graph.model.graph.node
    frozen = {}
    for i, (s1, s2) in sums.items():
        mean, second = s1 / count, s2 / count
        mean_name, var_name = nodes[i].input[3], nodes[i].input[4]
        dtype = graph.initializers[mean_name].dtype
        frozen[mean_name] = mean.astype(dtype)
        frozen[var_name] = np.maximum(second - mean**2, 0.0).astype(dtype)
    return frozen


def with_initializers(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` with the named initializers replaced."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for tensor in out.graph.initializer:
        if tensor.name in values:
            tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(values[tensor.name]), tensor.name))
    return out
