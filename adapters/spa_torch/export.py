"""Export an ``nn.Module`` to ONNX with parameter names kept and BatchNorm unfolded.

``torch.onnx.export(dynamo=False, do_constant_folding=False)`` keeps BatchNorm and the
``state_dict`` names (see ENVIRONMENT.md); ``keep_initializers_as_inputs`` stops the
exporter from merging equal-valued tensors (fresh BatchNorm statistics) into one. Initializers the exporter still renamed or
copied are matched back to parameters by value (allowing a 2-D transpose), never by
guessing names.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from spa_core.errors import FrameworkError, InvalidOptionError
from spa_core.graph import constant_tensors, mark_frozen
from spa_core.io import EXTERNAL_DATA_THRESHOLD
from spa_core.types import ExportedModel, ParamBinding

from .attention_scale import recording_attention_widths
from .symbolics import register_symbolics
from .trace_fixes import tracing_fixes

DEFAULT_OPSET = 17


def as_input_tuple(example_inputs: Any, input_shapes: Any = None) -> tuple[torch.Tensor, ...]:
    """Example inputs as a tuple of tensors (built from shapes when none are given)."""
    if example_inputs is None:
        if not input_shapes:
            raise InvalidOptionError(
                "a PyTorch model needs example inputs (or --input-shape 1,3,224,224) to be exported"
            )
        shapes = input_shapes.values() if isinstance(input_shapes, dict) else [input_shapes]
        if isinstance(input_shapes, Sequence) and input_shapes and isinstance(input_shapes[0], Sequence):
            shapes = input_shapes
        return tuple(torch.randn(*map(int, s)) for s in shapes)
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, np.ndarray):
        return (torch.from_numpy(example_inputs),)
    if isinstance(example_inputs, list | tuple):
        return tuple(torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x for x in example_inputs)
    raise InvalidOptionError(f"example inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}")


def named_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by state_dict name (shared tensors under every name)."""
    table: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        table[name] = p
    for name, b in model.named_buffers(remove_duplicate=False):
        table[name] = b
    return table


def export_module(model: torch.nn.Module, example_inputs: Any, options: dict[str, Any]) -> ExportedModel:
    inputs = as_input_tuple(example_inputs, options.get("input_shapes"))
    opset = int(options.get("opset", DEFAULT_OPSET))
    names = [f"input_{i}" for i in range(len(inputs))] if len(inputs) > 1 else ["input"]
    was_training = model.training
    model.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel has no ONNX export
    try:
        register_symbolics()
        try:
            traced = _trace_to_onnx(model, inputs, opset, names, decompose=False)
        except Exception as exc:  # noqa: BLE001 - retried with decompositions, reported below if that fails too
            try:
                traced = _trace_to_onnx(model, inputs, opset, names, decompose=True)
            except Exception:  # noqa: BLE001 - the first error is the one that names the operator
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise FrameworkError(f"torch.onnx.export failed for {type(model).__name__}: {first}") from exc
    finally:
        model.train(was_training)
        torch.backends.mha.set_fastpath_enabled(fastpath)
    proto = traced.onnx
    mapping = map_initializers(proto, named_tensors(model))
    shapes = {n: tuple(x.shape) for n, x in zip(names, inputs)}
    mark_frozen(proto, constants_equal_to(proto, traced.constants))
    return ExportedModel(onnx=proto, framework="torch", input_shapes=shapes, parameter_map=mapping,
                         extras={"example_inputs": inputs, "attention_widths": traced.attention_widths})


@dataclass
class _Traced:
    onnx: onnx.ModelProto
    attention_widths: dict[str, int]
    """Query width of each implicitly scaled attention call (see attention_scale)."""
    constants: list[torch.Tensor]
    """Constant matrices the decompositions put into the graph (see trace_fixes)."""


def _trace_to_onnx(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], opset: int, names: list[str],
                   decompose: bool) -> _Traced:
    """One TorchScript export; ``decompose`` rewrites calls that have no ONNX symbolic (see trace_fixes)."""
    large = sum(t.numel() * t.element_size() for t in named_tensors(model).values()) >= EXTERNAL_DATA_THRESHOLD
    with (tempfile.TemporaryDirectory(prefix="spa-export-") as folder, torch.no_grad(),
          tracing_fixes(decompose=decompose) as constants, recording_attention_widths(model) as widths):
        # past protobuf's 2 GiB limit the exporter writes the weights to files beside a model file
        target: io.BytesIO | str = str(Path(folder) / "model.onnx") if large else io.BytesIO()
        torch.onnx.export(
            model, inputs, target, dynamo=False, do_constant_folding=False, opset_version=opset,
            input_names=names,
            # as inputs, equal-valued tensors (fresh BatchNorm statistics) are not merged
            # into one initializer, which would couple unrelated layers
            keep_initializers_as_inputs=True,
        )
        proto = onnx.load(target, load_external_data=True) if large else onnx.load_from_string(target.getvalue())
    return _Traced(proto, widths, constants)


def constants_equal_to(proto: onnx.ModelProto, tensors: list[torch.Tensor]) -> list[str]:
    """Names of the initializers and Constant-node outputs of ``proto`` holding one of ``tensors``."""
    if not tensors:
        return []
    arrays = [t.detach().cpu().numpy() for t in tensors]
    found = []
    for name, tensor in constant_tensors(proto).items():
        if any(tuple(tensor.dims) == a.shape for a in arrays):
            value = numpy_helper.to_array(tensor)
            if any(value.shape == a.shape and np.array_equal(value, a) for a in arrays):
                found.append(name)
    return found


def map_initializers(proto: onnx.ModelProto, tensors: dict[str, torch.Tensor]) -> dict[str, ParamBinding]:
    """ONNX initializer -> native tensor, by name when the exporter kept it, else by value."""
    mapping: dict[str, ParamBinding] = {}
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for name, t in tensors.items():
        by_shape.setdefault(tuple(t.shape), []).append(name)
    for init in proto.graph.initializer:
        if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            continue
        dims = tuple(init.dims)
        if init.name in tensors and tuple(tensors[init.name].shape) == dims:
            mapping[init.name] = ParamBinding(init.name, tuple(range(len(dims))))
            continue
        if not dims or int(np.prod(dims)) < 2:
            continue
        value = numpy_helper.to_array(init)
        found = _match_by_value(value, tensors, by_shape)
        if found is not None:
            mapping[init.name] = found
    return mapping


def _match_by_value(value: np.ndarray, tensors: dict[str, torch.Tensor], by_shape: dict) -> ParamBinding | None:
    candidates = [(n, tuple(range(value.ndim)), value) for n in by_shape.get(value.shape, [])]
    if value.ndim == 2:
        candidates += [(n, (1, 0), value.T) for n in by_shape.get(value.shape[::-1], [])]
    for name, axes, oriented in candidates:
        native = tensors[name].detach().cpu().numpy()
        if native.shape == oriented.shape and np.array_equal(native, oriented):
            return ParamBinding(name, axes, "transposed" if axes == (1, 0) else "copied")
    return None
