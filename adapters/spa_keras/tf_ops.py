"""Conversions for TensorFlow ops that tf2onnx 1.17 lacks, as tf2onnx custom op handlers.

Keras 3 emits some ops tf2onnx cannot convert; each entry of :func:`custom_op_handlers`
rewrites one of them into standard ONNX ops while tf2onnx converts the graph.
"""

from __future__ import annotations

from collections.abc import Callable
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
