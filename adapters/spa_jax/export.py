"""Export a Flax model to ONNX with jax2onnx and bind every initializer to its pytree leaf.

The model is exported twice with the same input specs: once with its real values (the
ONNX the engine prunes) and once with probe values (:mod:`spa_jax.probe`). The two graphs
must be identical but for initializer values; each probe initializer then names its leaf
and element layout exactly, and the real initializer is checked to hold the real leaf in
that layout. jax2tf + tf2onnx is not used: with this JAX, jax2tf only emits
``XlaCallModule``, which tf2onnx cannot convert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import onnx
from onnx import numpy_helper

from spa_core.errors import FrameworkError, InvalidOptionError
from spa_core.types import ExportedModel, ParamBinding

from .plugin import FRAMEWORK
from .probe import LeafMap, ProbeDecoder, probe_values
from .views import ModelView

DEFAULT_OPSET = 18
MIN_OPSET = 18  # opset 17 makes jax2onnx write a ReduceMean that onnx rejects


def input_specs(example_inputs: Any, options: dict[str, Any]) -> list[jax.ShapeDtypeStruct]:
    """Shape/dtype specs of the model's positional inputs.

    ``example_inputs`` is one array, a tuple/list of arrays (or ``ShapeDtypeStruct``),
    or ``None`` with ``options["input_shapes"]`` (a list of shapes, float32).
    """
    if example_inputs is None:
        shapes = options.get("input_shapes")
        if not shapes:
            raise InvalidOptionError(
                "a Flax model needs example inputs (or options['input_shapes']) to be exported"
            )
        if isinstance(shapes, dict):
            shapes = list(shapes.values())
        if shapes and isinstance(shapes[0], int):
            shapes = [shapes]
        return [jax.ShapeDtypeStruct(tuple(int(d) for d in s), np.float32) for s in shapes]
    items: Sequence[Any] = (
        example_inputs if isinstance(example_inputs, list | tuple) else [example_inputs]
    )
    specs = []
    for item in items:
        if not (hasattr(item, "shape") and hasattr(item, "dtype")):
            raise InvalidOptionError(
                f"example input of type {type(item).__name__} has no shape and dtype; pass arrays"
            )
        specs.append(jax.ShapeDtypeStruct(tuple(item.shape), item.dtype))
    return specs


def _opset(options: dict[str, Any]) -> int:
    opset = int(options.get("opset", DEFAULT_OPSET))
    if opset < MIN_OPSET:
        raise InvalidOptionError(
            f"opset {opset} is too old for jax2onnx (it writes an invalid ReduceMean); use {MIN_OPSET} or newer"
        )
    return opset


def _to_onnx(fn: Any, specs: list[jax.ShapeDtypeStruct], opset: int) -> onnx.ModelProto:
    import jax2onnx

    try:
        return jax2onnx.to_onnx(fn, specs, opset=opset)
    except Exception as exc:  # the exporter raises many kinds; the user needs its message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FrameworkError(f"jax2onnx could not export the model: {first}") from exc


def clean_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace jax2onnx's ``value_info`` by onnx shape inference's.

    jax2onnx records intermediate shapes before it removes the transposes around
    convolutions, so tensors it moved to NCHW keep their NHWC shapes (``relu_out_0``
    ``[2, 16, 16, 8]`` for a ``[2, 8, 16, 16]`` tensor) and BatchNormalization outputs get
    rank 0; a shape-driven analysis must not read those.
    """
    del model.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is a convenience here; the engine infers again
        return model


def _structure(model: onnx.ModelProto) -> tuple:
    """The graph without initializer values: nodes, attribute names, initializer shapes."""
    nodes = tuple(
        (n.op_type, n.domain, tuple(n.input), tuple(n.output), tuple(a.name for a in n.attribute))
        for n in model.graph.node
    )
    inits = tuple((t.name, tuple(t.dims), t.data_type) for t in model.graph.initializer)
    return nodes, inits


def bind_initializers(
    real: onnx.ModelProto, probe: onnx.ModelProto, leaves: dict[str, np.ndarray]
) -> tuple[dict[str, LeafMap], list[str]]:
    """Map the initializers of ``real`` to leaves through the probe export.

    :return: ``(leaf_maps, derived)``: the initializer -> :class:`LeafMap` binding, and
        the names of initializers that depend on parameter values but are not one whole
        leaf (computed by the exporter from parameters); they cannot be pruned natively.
    :raises FrameworkError: when the two exports differ in structure, or a real
        initializer does not hold the values its probe says it should.
    """
    if _structure(real) != _structure(probe):
        raise FrameworkError(
            "jax2onnx exported a different graph when the parameter values changed, so SPA "
            "cannot bind ONNX initializers to Flax parameters"
        )
    decoder = ProbeDecoder(leaves)
    real_values = {t.name: numpy_helper.to_array(t) for t in real.graph.initializer}
    leaf_maps: dict[str, LeafMap] = {}
    derived: list[str] = []
    for tensor in probe.graph.initializer:
        probe_value = numpy_helper.to_array(tensor)
        real_value = real_values[tensor.name]
        if np.array_equal(probe_value, real_value, equal_nan=True):
            continue  # an exporter constant (shape, epsilon, axes): not a parameter
        leaf_map = decoder.decode(probe_value)
        if leaf_map is None:
            derived.append(tensor.name)
            continue
        expected = leaves[leaf_map.path].reshape(-1)[leaf_map.positions]
        if not np.array_equal(expected, real_value, equal_nan=True):
            raise FrameworkError(
                f"ONNX initializer {tensor.name} does not hold parameter {leaf_map.path} "
                "as its probe export says; jax2onnx changed the values"
            )
        leaf_maps[tensor.name] = leaf_map
    return leaf_maps, derived


def export_model(view: ModelView, example_inputs: Any, options: dict[str, Any]) -> ExportedModel:
    """Export ``view``'s model and return the ONNX model with its parameter bindings."""
    specs = input_specs(example_inputs, options)
    opset = _opset(options)
    leaves = view.leaves()
    real = _to_onnx(view.export_callable(None), specs, opset)
    probe = _to_onnx(view.export_callable(probe_values(leaves)), specs, opset)
    leaf_maps, derived = bind_initializers(real, probe, leaves)
    real = clean_value_info(real)
    parameter_map = {
        name: ParamBinding(native_name=m.path, axes=m.axes, transform=m.transform)
        for name, m in leaf_maps.items()
    }
    bound = {m.path for m in leaf_maps.values()}
    input_shapes = {
        inp.name: tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
        for inp in real.graph.input
    }
    return ExportedModel(
        onnx=real,
        framework=FRAMEWORK,
        input_shapes=input_shapes,
        parameter_map=parameter_map,
        extras={
            "kind": view.kind,
            "leaf_maps": leaf_maps,
            "derived": derived,
            "unbound_leaves": [p for p, v in leaves.items() if v.dtype == np.float32 and p not in bound],
            "input_specs": specs,
        },
    )
