"""Map ONNX initializers to MXNet parameters (main environment).

``mx.onnx.export_model`` names initializers after the gluon parameters and keeps their
layout (Conv OIHW, Gemm with ``transB=1`` on the (out, in) weight), so a name match is
the rule; it is confirmed by value, because an exporter that renames or transforms a
weight must never be trusted on its names. An initializer whose name is not a
parameter is matched by value (same array, or the transpose of a matrix); one that
matches nothing is an exporter constant and stays unbound.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from spa_core.types import ParamBinding


def _candidates(array: np.ndarray) -> list[tuple[np.ndarray, tuple[int, ...]]]:
    """Layouts an exporter may have written a native array in: (view, onnx->native axes)."""
    views = [(array, tuple(range(array.ndim)))]
    if array.ndim == 2:
        views.append((array.T, (1, 0)))
    return views


def bind_parameters(
    model: onnx.ModelProto,
    native: Mapping[str, np.ndarray],
    fixups: Mapping[str, str],
) -> tuple[dict[str, ParamBinding], list[str]]:
    """Return (parameter_map, problems).

    :param native: MXNet parameter values by name (as the worker dumped them).
    :param fixups: parameter name -> transform applied before export (``fix_gamma``);
        such a parameter is bound by name and shape only.
    :return: the map, and one sentence per initializer named like a parameter whose
        value does not match it (bound nonetheless by value elsewhere or left unbound).
    """
    bindings: dict[str, ParamBinding] = {}
    problems: list[str] = []
    by_size: dict[int, list[str]] = {}
    for name, arr in native.items():
        by_size.setdefault(arr.size, []).append(name)

    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        own = native.get(init.name)
        if own is not None and own.shape == value.shape:
            if init.name in fixups:
                bindings[init.name] = ParamBinding(init.name, tuple(range(own.ndim)), fixups[init.name])
                continue
            if np.array_equal(own, value):
                bindings[init.name] = ParamBinding(init.name, tuple(range(own.ndim)))
                continue
            problems.append(f"ONNX initializer {init.name} differs from the MXNet parameter of that name")
        if value.size < 2 or not np.issubdtype(value.dtype, np.floating):
            continue
        for name in by_size.get(value.size, []):
            hit = next((axes for view, axes in _candidates(native[name])
                        if view.shape == value.shape and np.array_equal(view, value)), None)
            if hit is not None:
                bindings[init.name] = ParamBinding(name, hit, "" if hit == tuple(range(len(hit))) else "transposed")
                break
    return bindings, problems
