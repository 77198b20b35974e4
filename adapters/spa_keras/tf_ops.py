"""Making Keras 3 graphs convertible by tf2onnx 1.17.

* :func:`custom_op_handlers`: TensorFlow ops tf2onnx lacks, rewritten into standard ONNX
  ops while tf2onnx converts the graph.
* :func:`plain_convolutions`: Keras runs grouped convolutions (ConvNeXt's depthwise
  ``Conv2D(groups=C)``) inside an XLA-compiled ``tf.function``, which tf2onnx leaves as
  an opaque ``StatefulPartitionedCall``. While tracing for export they are emitted as a
  plain ``Conv2D`` op, which tf2onnx converts to an ONNX Conv with ``group``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


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
