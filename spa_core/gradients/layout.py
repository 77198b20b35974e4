"""Native parameter arrays to ONNX initializer layout, through an adapter's bindings.

An adapter's :class:`~spa_core.types.ParamBinding` says, for each ONNX axis of an
initializer, which native axis it is (``axes``). A native gradient therefore becomes
the initializer's gradient by ``transpose(axes)``; when some ONNX axis has no native
counterpart (a depthwise kernel ``(H, W, C, 1)`` exported as ``(C, 1, H, W)``) the known
axes are transposed into place and the result reshaped to the initializer's shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from ..types import ParamBinding

log = logging.getLogger(__name__)


def native_to_onnx(value: np.ndarray, binding: ParamBinding, onnx_shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` (native layout) in the initializer's layout, or ``None`` when sizes differ."""
    value = np.asarray(value)
    if value.size != int(np.prod(onnx_shape, dtype=np.int64)):
        return None
    known = [a for a in binding.axes if a is not None]
    if sorted(known) == list(range(value.ndim)):
        value = np.transpose(value, known)
    elif known:
        rest = [a for a in range(value.ndim) if a not in known]
        value = np.transpose(value, known + rest) if len(set(known)) == len(known) else value
    return value.reshape(onnx_shape)


def map_to_onnx(
    native: Mapping[str, np.ndarray],
    bindings: Mapping[str, ParamBinding],
    onnx_shapes: Mapping[str, tuple[int, ...]],
) -> dict[str, np.ndarray]:
    """Native arrays (by native name) as initializer arrays (by ONNX name)."""
    out: dict[str, np.ndarray] = {}
    for onnx_name, binding in bindings.items():
        value = native.get(binding.native_name)
        if value is None or onnx_name not in onnx_shapes:
            continue
        mapped = native_to_onnx(value, binding, tuple(onnx_shapes[onnx_name]))
        if mapped is None:
            log.debug("no layout from %s %s to %s %s", binding.native_name, np.shape(value), onnx_name,
                      onnx_shapes[onnx_name])
            continue
        out[onnx_name] = mapped
    return out
