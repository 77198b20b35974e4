"""Shape inference and model checking without serialising the weights.

``onnx.shape_inference.infer_shapes`` and ``onnx.checker.check_model`` take a
``ModelProto`` and serialise it whole before doing anything, so on a ViT-B/16 (350 MB of
weights) each call spent seconds copying bytes it never reads: profiling showed a third
of the end-to-end pruning time in ``SerializeToString``. Neither needs the *values* of
large float initializers, only their type and shape, so both run here on a *weightless
view*: the same graph with every large float initializer turned into a typed graph
input. Small initializers (shape tensors, axes, scales) stay, so data propagation of
static shapes still works.
"""

from __future__ import annotations

import math

import onnx
from onnx import helper, shape_inference

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
               onnx.TensorProto.BFLOAT16}
LARGE_ELEMENTS = 1024
"""Float initializers with at least this many elements become typed inputs in the view."""

_MODEL_FIELDS = ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string")


def _is_large_weight(tensor: onnx.TensorProto) -> bool:
    return tensor.data_type in FLOAT_TYPES and math.prod(tensor.dims) >= LARGE_ELEMENTS


def weightless_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large float initializers are graph inputs of the same type
    and shape (their values are not copied)."""
    view = onnx.ModelProto()
    for name in _MODEL_FIELDS:
        setattr(view, name, getattr(model, name))
    view.opset_import.extend(model.opset_import)
    view.functions.extend(model.functions)
    src, dst = model.graph, view.graph
    dst.name = src.name
    dst.node.extend(src.node)
    dst.input.extend(src.input)
    dst.output.extend(src.output)
    dst.value_info.extend(src.value_info)
    dst.sparse_initializer.extend(src.sparse_initializer)
    declared = {i.name for i in src.input}
    for tensor in src.initializer:
        if not _is_large_weight(tensor):
            dst.initializer.append(tensor)
        elif tensor.name not in declared:
            dst.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return view


def infer_shapes(model: onnx.ModelProto, *, strict_mode: bool = False, data_prop: bool = False) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes`` on the weightless view; the inferred
    ``value_info`` and output types are written into ``model`` itself, which is returned."""
    inferred = shape_inference.infer_shapes(weightless_view(model), strict_mode=strict_mode, data_prop=data_prop)
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    for mine, theirs in zip(model.graph.output, inferred.graph.output):
        mine.type.CopyFrom(theirs.type)
    return model


def check_model(model: onnx.ModelProto) -> None:
    """``onnx.checker.check_model`` on the weightless view (the initializer values are
    checked by building an onnxruntime session, which reads them anyway)."""
    onnx.checker.check_model(weightless_view(model))


def check_shapes(model: onnx.ModelProto) -> None:
    """Strict shape inference (raises on an inconsistency), without touching ``model``."""
    shape_inference.infer_shapes(weightless_view(model), strict_mode=True)
