"""ONNX decompositions for ATen operators the TorchScript exporter cannot export.

Registered by the PyTorch adapter before its first export (:func:`register_symbolics`);
they only make exports succeed that would otherwise fail.

* ``aten::rms_norm`` (``nn.RMSNorm``, ``F.rms_norm``; timm's Gemma/Qwen vision towers):
  ``x / sqrt(mean(x * x) + eps) * weight`` over the normalised axes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.onnx import symbolic_helper


def _rms_norm(g: Any, x: Any, normalized_shape: Any, weight: Any, eps: Any, axes_as_input: bool) -> Any:
    shape = symbolic_helper._get_const(normalized_shape, "is", "normalized_shape")
    value = None if symbolic_helper._is_none(eps) else symbolic_helper._get_const(eps, "f", "eps")
    eps_value = float(torch.finfo(torch.float32).eps if value is None else value)
    axes = list(range(-len(shape), 0))
    square = g.op("Mul", x, x)
    if axes_as_input:
        mean = g.op("ReduceMean", square, g.op("Constant", value_t=torch.tensor(axes, dtype=torch.int64)), keepdims_i=1)
    else:
        mean = g.op("ReduceMean", square, axes_i=axes, keepdims_i=1)
    rms = g.op("Sqrt", g.op("Add", mean, g.op("Constant", value_t=torch.tensor(eps_value))))
    y = g.op("Div", x, rms)
    return y if symbolic_helper._is_none(weight) else g.op("Mul", y, weight)


def rms_norm_opset9(g: Any, x: Any, normalized_shape: Any, weight: Any, eps: Any) -> Any:
    return _rms_norm(g, x, normalized_shape, weight, eps, axes_as_input=False)


def rms_norm_opset18(g: Any, x: Any, normalized_shape: Any, weight: Any, eps: Any) -> Any:
    return _rms_norm(g, x, normalized_shape, weight, eps, axes_as_input=True)


# name -> ((from opset, symbolic), ...): ReduceMean takes its axes as an input from opset 18
SYMBOLICS = {"aten::rms_norm": ((9, rms_norm_opset9), (18, rms_norm_opset18))}
_registered = False


def register_symbolics() -> None:
    """Register :data:`SYMBOLICS` with the TorchScript exporter (once per process).

    They only add exports that would otherwise fail, so they stay registered.
    """
    global _registered
    if _registered:
        return
    for name, versions in SYMBOLICS.items():
        for opset, fn in versions:
            torch.onnx.register_custom_op_symbolic(name, fn, opset)
    _registered = True
