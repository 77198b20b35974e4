"""Cross-framework: a PyTorch module from a (pruned) ONNX model, through onnx2torch.

The pruned ONNX model is the portable result of every pruning, so any framework with an
ONNX importer can take it. For PyTorch, ``onnx2torch`` works once two things are dealt
with (see ENVIRONMENT.md):

* its import pulls in ``torchvision`` (for its NMS and RoIAlign converters only), and
  the registry's torchvision is a CUDA build that fails to import next to the CPU torch.
  When that import fails, a stand-in ``torchvision`` module is placed in ``sys.modules``
  just while onnx2torch is imported; its ``nms``/``roi_align`` raise when called, and
  ``sys.modules`` is restored afterwards so later imports see the real failure.
* it rejects some exporters' output: ReduceMean v18, ``allowzero=1`` and
  ``auto_pad=SAME_*``. :func:`onnx2torch_ready` converts to opset 17 and writes
  explicit pads from the inferred input shapes.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference, version_converter

from spa_core.errors import FrameworkError
from spa_core.io import load_model

OPSET = 17
_PADDED_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"}


def to_torch(pruned_onnx: onnx.ModelProto | str | bytes) -> Any:
    """A ``torch.nn.Module`` (a ``torch.fx.GraphModule``) computing the ONNX model.

    The module is returned in eval mode, as the ONNX model computes inference: an ONNX
    BatchNormalization becomes ``nn.BatchNorm*d``, which in train mode would normalise by
    the batch's statistics instead of the running ones. Call ``.train()`` to fine-tune.
    """
    convert = _onnx2torch_convert()
    model = onnx2torch_ready(load_model(pruned_onnx))
    try:
        return convert(model).eval()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FrameworkError(f"onnx2torch could not convert the model: {first}") from exc


# ---------------------------------------------------------------- model preparation
def onnx2torch_ready(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy at opset 17 in the forms onnx2torch accepts.

    Explicit pads instead of ``auto_pad``, ``allowzero=0``, GlobalMaxPool as ReduceMax,
    and ConvTranspose with asymmetric pads as a symmetric one followed by a Slice.
    """
    if _opset(model) > OPSET:
        model = version_converter.convert_version(model, OPSET)
    model = shape_inference.infer_shapes(model)
    shapes = _static_shapes(model)
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if node.op_type in _PADDED_OPS:
            _explicit_pads(node, shapes)
        rewrite = _REWRITES.get(node.op_type)
        nodes.extend(rewrite(model, node, shapes) if rewrite else [node])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _reshape(model: onnx.ModelProto, node: onnx.NodeProto, shapes: dict[str, list[int]]) -> list[onnx.NodeProto]:
    _drop_attribute(node, "allowzero")
    return [node]


def _global_max_pool(model: onnx.ModelProto, node: onnx.NodeProto, shapes: dict[str, list[int]]) -> list[onnx.NodeProto]:
    rank = len(shapes.get(node.input[0], [])) or 4
    return [
        helper.make_node(
            "ReduceMax", [node.input[0]], list(node.output), name=node.name, axes=list(range(2, rank)), keepdims=1
        )
    ]


def _conv_transpose(model: onnx.ModelProto, node: onnx.NodeProto, shapes: dict[str, list[int]]) -> list[onnx.NodeProto]:
    """Asymmetric pads: pad symmetrically by the smaller side, then slice off the rest."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    pads = list(attrs.get("pads", []))
    n = len(pads) // 2
    if not pads or pads[:n] == pads[n:]:
        return [node]
    common = [min(b, e) for b, e in zip(pads[:n], pads[n:])]
    starts = [b - c for b, c in zip(pads[:n], common)]
    ends = [-(e - c) if e > c else _INT_MAX for e, c in zip(pads[n:], common)]
    _drop_attribute(node, "pads")
    node.attribute.append(helper.make_attribute("pads", common + common))
    wide = f"{node.output[0]}__spa_wide"
    out = node.output[0]
    node.output[0] = wide
    consts = {f"{wide}_{k}": v for k, v in (("starts", starts), ("ends", ends), ("axes", list(range(2, 2 + n))))}
    for name, values in consts.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
    return [node, helper.make_node("Slice", [wide, *consts], [out], name=f"{node.name}__spa_crop")]


_INT_MAX = 2**62
_REWRITES: dict[str, Callable[[onnx.ModelProto, onnx.NodeProto, dict[str, list[int]]], list[onnx.NodeProto]]] = {
    "Reshape": _reshape,
    "GlobalMaxPool": _global_max_pool,
    "ConvTranspose": _conv_transpose,
}


def _opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=OPSET)


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _drop_attribute(node: onnx.NodeProto, name: str) -> None:
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)


def _explicit_pads(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> None:
    """Replace ``auto_pad=SAME_UPPER/SAME_LOWER/VALID`` with the pads it stands for."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto == "NOTSET":
        return
    spatial = shapes.get(node.input[0], [])[2:]
    if node.op_type in ("Conv", "ConvTranspose"):
        kernel = attrs.get("kernel_shape") or shapes.get(node.input[1], [])[2:]
    else:
        kernel = attrs.get("kernel_shape", [])
    if not spatial or not kernel:
        raise FrameworkError(f"node {node.name!r}: auto_pad={auto} needs static shapes to be made explicit")
    n = len(spatial)
    strides = attrs.get("strides", [1] * n)
    dilations = attrs.get("dilations", [1] * n)
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = 0
        if auto.startswith("SAME"):
            if node.op_type == "ConvTranspose":
                total = max((k - 1) * d + 1 - s, 0)
            else:
                out = math.ceil(size / s)
                total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(big if auto == "SAME_LOWER" else small)
        end.append(small if auto == "SAME_LOWER" else big)
    _drop_attribute(node, "auto_pad")
    _drop_attribute(node, "pads")
    node.attribute.append(helper.make_attribute("pads", begin + end))


# ---------------------------------------------------------------- importing onnx2torch
def _onnx2torch_convert() -> Callable[[onnx.ModelProto], Any]:
    from spa_torch.torchvision_compat import ensure_torchvision

    ensure_torchvision()  # onnx2torch imports torchvision, whose CUDA build breaks on a CPU torch
    try:
        from onnx2torch import convert

        return convert
    except ImportError as exc:
        if "onnx2torch" in str(exc) and "torchvision" not in str(exc):
            raise FrameworkError("converting to PyTorch needs onnx2torch (pip install onnx2torch)") from None
    except RuntimeError:  # torchvision's compiled ops do not match this torch
        pass
    return _import_with_torchvision_stand_in()


def _import_with_torchvision_stand_in() -> Callable[[onnx.ModelProto], Any]:
    saved = {k: v for k, v in sys.modules.items() if k == "torchvision" or k.startswith("torchvision.")}
    for key in saved:
        del sys.modules[key]
    for key in [k for k in sys.modules if k == "onnx2torch" or k.startswith("onnx2torch.")]:
        del sys.modules[key]  # a half-finished import from the failed attempt
    stand_in = _torchvision_stand_in()
    sys.modules.update(stand_in)
    try:
        from onnx2torch import convert
    finally:
        for key in stand_in:
            sys.modules.pop(key, None)
        sys.modules.update(saved)
    return convert


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise FrameworkError("torchvision does not work with this torch; NMS and RoIAlign cannot run")

    root = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    for name in ("nms", "batched_nms", "roi_align", "box_convert"):
        setattr(ops, name, unavailable)
    root.ops = ops  # type: ignore[attr-defined]
    root.__spa_stand_in__ = True  # type: ignore[attr-defined]
    return {"torchvision": root, "torchvision.ops": ops}
