"""Making Keras 3 graphs convertible by tf2onnx 1.17.

* :func:`custom_op_handlers`: TensorFlow ops tf2onnx lacks, rewritten into standard ONNX
  ops while tf2onnx converts the graph.
* :func:`plain_convolutions`: Keras runs grouped convolutions (ConvNeXt's depthwise
  ``Conv2D(groups=C)``) inside an XLA-compiled ``tf.function``, which tf2onnx leaves as
  an opaque ``StatefulPartitionedCall``. While tracing for export they are emitted as a
  plain ``Conv2D`` op, which tf2onnx converts to an ONNX Conv with ``group``.
* :func:`lean_conversion`: tf2onnx's optimizer passes each leave a dead copy of every
  constant behind (about one copy of the weights per pass, 36 passes), which made large
  models (ConvNeXtLarge) run out of memory; within the block they do not.
* :func:`split_extra_conv_bias`: repairs the Conv with a fourth input that tf2onnx
  1.17 emits for ``Conv2D → BiasAdd → BiasAdd`` (Grappler turns a residual ``Add`` of two
  ``(1, 1, 1, C)`` tensors, as in ResNet V2 at 1×1 resolution, into a ``BiasAdd``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper


def _erfc(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    """``erfc(x) = 1 - erf(x)`` (Keras' exact GELU uses Erfc)."""
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype)).output[0]
    ctx.insert_new_node_on_output(
        "Sub", node.output[0], name=utils.make_name(f"{node.name}_one_minus"), inputs=[one, node.output[0]]
    )


def custom_op_handlers() -> dict[str, tuple[Callable[..., None], list[Any]]]:
    """TF op type -> (handler, extra args), as ``tf2onnx.convert`` takes them."""
    return {"Erfc": (_erfc, [])}


@contextmanager
def plain_convolutions() -> Iterator[None]:
    """Within the block, Keras' TensorFlow ``conv`` never wraps itself in XLA."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import nn as tf_nn

    original = tf_nn.conv

    def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None, dilation_rate: Any = 1) -> Any:
        from keras.src import backend

        data_format = backend.standardize_data_format(data_format)
        return tf.nn.convolution(
            inputs,
            kernel,
            strides,
            padding.upper(),
            data_format=tf_nn._convert_data_format(data_format, len(inputs.shape)),
            dilations=dilation_rate,
        )

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = original


@contextmanager
def lean_conversion(collect_garbage: bool = True) -> Iterator[None]:
    """Within the block, tf2onnx's graph optimisation keeps no dead copies of the weights.

    Two leaks, measured on ConvNeXtTiny (111 MB of weights): the optimiser's peak fell from
    +4.1 GB to +0.4 GB, the conversion's output is unchanged.

    * ``Node.update_proto`` (after every optimiser pass) clears a node's attributes and
      copies them in again. The protobuf runtime keeps cleared sub-messages in the node's
      arena until the node itself dies, so a ``Const`` node gained one dead copy of its
      tensor per pass. Here every update starts from a fresh ``NodeProto``.
    * The replaced objects sit in reference cycles (nodes and graphs point at each other)
      and wait for the cyclic garbage collector; with ``collect_garbage`` it runs after
      every pass. That is worth it only for large weights: with TensorFlow loaded a
      collection takes about 0.2 s, and on a 14 MB MobileNetV2 the 25 collections were
      4.7 s of a 7.8 s export.
    """
    import gc

    from tf2onnx import graph as tf2onnx_graph
    from tf2onnx.optimizer.optimizer_base import GraphOptimizerBase

    node_class = tf2onnx_graph.Node
    original_update, original_optimize = node_class.update_proto, GraphOptimizerBase.optimize

    def update_proto(self: Any, external_tensor_storage: Any = None) -> Any:
        old = self._op
        self._op = onnx.NodeProto(name=old.name, op_type=old.op_type, domain=old.domain, doc_string=old.doc_string)
        return original_update(self, external_tensor_storage)

    def optimize(self: Any, graph: Any, iteration: int) -> Any:
        result = original_optimize(self, graph, iteration)
        if collect_garbage:
            gc.collect()
        return result

    node_class.update_proto, GraphOptimizerBase.optimize = update_proto, optimize
    try:
        yield
    finally:
        node_class.update_proto, GraphOptimizerBase.optimize = original_update, original_optimize
        if collect_garbage:
            gc.collect()


@contextmanager
def numpy_product_alias() -> Iterator[None]:
    """Within the block ``numpy.product`` exists: tf2onnx 1.17's large-model path calls it,
    and NumPy 2 removed it (``numpy.prod`` is the same function)."""
    had = "product" in np.__dict__
    if not had:
        np.product = np.prod
    try:
        yield
    finally:
        if not had:
            del np.product


def internalise_external_tensors(proto: onnx.ModelProto, data: dict[str, bytes]) -> int:
    """Move tf2onnx's external tensor storage (``large_model=True``) into the initializers
    and ``Constant`` nodes that point at it. Returns how many tensors moved."""
    tensors = list(proto.graph.initializer)
    tensors += [a.t for n in proto.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
    moved = 0
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next(e.value for e in tensor.external_data if e.key == "location")
        tensor.raw_data = data.pop(location)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        moved += 1
    return moved


def split_extra_conv_bias(proto: onnx.ModelProto) -> int:
    """``Conv(x, W, b, e)`` (invalid ONNX) -> ``Add(Conv(x, W, b), Reshape(e, [M, 1, ...]))``.

    tf2onnx's ``rewrite_biasadd_with_conv2d`` folds a ``BiasAdd`` into a ``Conv2D`` that
    already holds a bias, as if it were a ``Conv2DBackpropInput`` (whose third input is
    not a bias). ``e`` is the TensorFlow bias: one value per output channel, which is
    axis 1 of the ONNX Conv's output. Returns how many Convs were repaired.
    """
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    taken = {v for n in graph.node for v in (*n.input, *n.output, n.name)} | set(inits)

    def fresh(base: str) -> str:
        name, i = base, 0
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        taken.add(name)
        return name

    nodes: list[onnx.NodeProto] = []
    repaired = 0
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) != 4:
            continue
        kernel = inits.get(node.input[1])
        given = [list(a.ints) for a in node.attribute if a.name == "kernel_shape"]
        spatial = len(given[0]) if given else len(kernel.dims) - 2 if kernel is not None else None
        if spatial is None:
            continue  # left invalid: the engine names the node
        extra = node.input[3]
        del node.input[3]
        out = node.output[0]
        node.output[0] = fresh(f"{out}__conv")
        shape = [int(kernel.dims[0]) if kernel is not None else -1] + [1] * spatial
        shape_name = fresh(f"{node.name}__bias_shape")
        graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), shape_name))
        reshaped = fresh(f"{extra}__nchw")
        make = onnx.helper.make_node
        nodes.append(make("Reshape", [extra, shape_name], [reshaped], name=fresh(f"{node.name}__bias_reshape")))
        nodes.append(make("Add", [node.output[0], reshaped], [out], name=fresh(f"{node.name}__bias_add")))
        repaired += 1
    if repaired:
        del graph.node[:]
        graph.node.extend(nodes)
    return repaired
