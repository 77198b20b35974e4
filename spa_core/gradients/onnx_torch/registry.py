"""The operator table of the ONNX-in-torch executor.

Each ONNX operator of the default domain maps to a function
``fn(inputs, attrs) -> tensor | tuple of tensors``: ``inputs`` are torch tensors (``None``
for an omitted optional input), ``attrs`` the node's attributes as Python values plus
``_opset`` (the model's default-domain opset, for operators whose meaning changed) and
``_outputs`` (how many outputs the node has). Functions register themselves with
:func:`op`; :mod:`.ops_math`, :mod:`.ops_nn` and :mod:`.ops_shape` hold them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

OpFn = Callable[[list[Any], dict[str, Any]], Any]
OPS: dict[str, OpFn] = {}

# ONNX TensorProto element type -> torch dtype
DTYPES: dict[int, torch.dtype] = {
    1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
    9: torch.bool, 10: torch.float16, 11: torch.float64, 12: torch.int64, 13: torch.int64, 16: torch.bfloat16,
}


def op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register a function for one or more ONNX op types."""

    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
        return fn

    return register


def ints(t: torch.Tensor | None) -> list[int]:
    """An integer tensor input (shape, axes, pads) as a Python list."""
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


def axis_of(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis
