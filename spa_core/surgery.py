"""Surgery: remove the chosen channels from the ONNX model, then check the result.

Initializers are sliced along every pruned axis; shape constants (Reshape targets,
split sizes, slice bounds...) and attributes (``group``, ``num_groups``...) are
rewritten by the callbacks their rules registered. A rewritten constant gets a new
name, so a constant shared by several nodes is never changed under another node's feet.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .analysis import Analysis
from .errors import SpaError
from .io import copy_without_initializers
from .plan import AttributePlan
from .rules.context import SurgeryView
from .shape_inference import check_model as check_model_structure
from .shape_inference import check_shapes


class SurgeryError(SpaError):
    """The pruned model failed its checks (a bug in a rule: please report it)."""


def surgery_view(analysis: Analysis, removed: np.ndarray) -> SurgeryView:
    def kept(value: str, axis: int) -> np.ndarray:
        if (value, axis) not in analysis.dim_start:
            return np.arange(analysis.graph.shapes[value][axis])
        return np.nonzero(~removed[analysis.dim_labels((value, axis))])[0]

    def sizes(value: str, axis: int) -> int:
        return len(kept(value, axis))

    return SurgeryView(kept, sizes)


def apply_removal(analysis: Analysis, removed: np.ndarray) -> tuple[onnx.ModelProto, list[AttributePlan]]:
    """A new model with the classes marked in ``removed`` taken out."""
    graph = analysis.graph
    model = copy_without_initializers(graph.model)  # the weights are added back below, sliced
    view = surgery_view(analysis, removed)

    new_inits = []
    for tensor in graph.model.graph.initializer:
        name, shape = tensor.name, tuple(tensor.dims)
        # weights, and constant index tensors that route channels (a Gather's indices)
        routed = graph.is_parameter(name) or any((name, a) in analysis.dim_start for a in range(len(shape)))
        keeps = [view.kept(name, axis) for axis in range(len(shape))] if routed else []
        if all(len(keep) == size for keep, size in zip(keeps, shape)):
            new_inits.append(tensor)  # unchanged: its values are never converted
            continue
        sliced = graph.initializers[name]
        for axis, keep in enumerate(keeps):
            if len(keep) != shape[axis]:
                sliced = np.take(sliced, keep, axis=axis)
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(sliced), name))
    model.graph.initializer.extend(new_inits)

    nodes = model.graph.node
    for node_index, input_index, rewrite in analysis.input_rewriters:
        node = nodes[node_index]
        old_name = node.input[input_index] if input_index < len(node.input) else ""
        old = graph.initializers.get(old_name) if old_name else None
        new = rewrite(view, old if old is not None else np.zeros(0, dtype=np.int64))
        if old is not None and np.array_equal(new, old):
            continue
        if old is None and len(new) == 0:
            continue
        fresh = f"{old_name or graph.node_name(node_index)}__spa{node_index}_{input_index}"
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(new), fresh))
        while len(node.input) <= input_index:
            node.input.append("")
        node.input[input_index] = fresh

    changed_attributes = []
    for node_index, attr_name, rewrite in analysis.attribute_rewriters:
        node = nodes[node_index]
        value = rewrite(view)
        kept_attrs = [a for a in node.attribute if a.name != attr_name]
        old = [a for a in node.attribute if a.name == attr_name]
        old_value = helper.get_attribute_value(old[0]) if old else None
        if value == old_value:
            continue
        del node.attribute[:]
        node.attribute.extend(kept_attrs)
        if value is not None:
            node.attribute.append(helper.make_attribute(attr_name, value))
        changed_attributes.append(AttributePlan(graph.node_name(node_index), attr_name, value))

    del model.graph.value_info[:]
    return model, changed_attributes


def check_model(model: onnx.ModelProto, original: onnx.ModelProto | None = None) -> None:
    """onnx checker, strict shape inference, and an onnxruntime session.

    A check that the original model fails as well (a deprecated operator version, an
    operator onnx cannot infer shapes for) is not held against the pruned model; the
    onnxruntime session must always build.
    """
    from .runtime import session

    checks = [
        ("onnx checker", check_model_structure),
        ("shape inference", check_shapes),
    ]
    for label, check in checks:
        try:
            check(model)
        except Exception as exc:
            if original is not None and _fails(check, original):
                continue
            raise SurgeryError(f"the pruned model failed the {label}: {exc}") from exc
    try:
        session(model)
    except Exception as exc:
        raise SurgeryError(f"the pruned model does not load in onnxruntime: {exc}") from exc


def _fails(check, model: onnx.ModelProto) -> bool:
    try:
        check(model)
    except Exception:
        return True
    return False
