"""Data types shared by the engine and the framework adapters.

An adapter exports a native model to ONNX and returns an :class:`ExportedModel`: the
ONNX model plus a map from ONNX initializer names to the native parameters they came
from (:class:`ParamBinding`). The engine prunes the ONNX model and hands the adapter a
:class:`~spa_core.plan.Plan`, whose per-initializer kept indices the adapter translates
back to native parameters through the same bindings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx


@dataclass(frozen=True)
class ParamBinding:
    """Where an ONNX initializer came from in the native model.

    Attributes:
        native_name: the native parameter's name (``layer1.0.conv1.weight``,
            ``conv2d/kernel``, a pytree path joined with ``/``...).
        axes: for each ONNX axis of the initializer, the native axis it is (``None``
            when it has no native counterpart). Keras' HWIO kernel exported as OIHW has
            ``axes=(3, 2, 0, 1)``.
        transform: free-form note of what the exporter did besides permuting axes
            (``"bn_folded"``, ``"transposed"``); adapters use it, the engine ignores it.
    """

    native_name: str
    axes: tuple[int | None, ...]
    transform: str = ""


@dataclass
class ExportedModel:
    """A native model exported to ONNX, with what is needed to come back.

    Attributes:
        onnx: the exported model (names kept where the exporter allows it).
        framework: the adapter's framework name (``"torch"``, ``"keras"``...).
        input_shapes: static shape of each graph input used for the export.
        parameter_map: ONNX initializer name -> native parameter binding. Initializers
            absent from the map have no native counterpart (exporter constants).
        extras: adapter-private data needed by ``apply_plan`` (module references,
            layer name tables...). The engine never reads it.
    """

    onnx: onnx.ModelProto
    framework: str
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    parameter_map: dict[str, ParamBinding] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
