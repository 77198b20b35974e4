"""Shape, indexing and constant operators of the ONNX-in-torch executor.

Shape values are int64 tensors, as in ONNX; operators that consume them (Reshape,
Expand, Slice...) read them back as Python integers. Indexing uses ``index_select`` so
gradients flow through Gather and Slice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from onnx import numpy_helper

from .registry import axis_of, ints, op


def _int_tensor(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


@op("Shape")
def _shape(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    dims = list(x[0].shape)
    start, end = a.get("start", 0), a.get("end", len(dims))
    return _int_tensor(dims[start:end])


@op("Size")
def _size(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return torch.tensor(x[0].numel(), dtype=torch.int64)


@op("Reshape")
def _reshape(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    shape = ints(x[1])
    if not a.get("allowzero", 0):
        shape = [x[0].shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x[0].reshape(shape)


@op("Flatten")
def _flatten(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    axis = axis_of(a.get("axis", 1), t.dim())
    lead = int(np.prod(t.shape[:axis], dtype=np.int64))
    return t.reshape(lead, -1)


@op("Transpose")
def _transpose(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    perm = a.get("perm") or list(reversed(range(x[0].dim())))
    return x[0].permute(*perm)


def _axes(x: list[Any], a: dict[str, Any]) -> list[int]:
    return ints(x[1]) if a["_opset"] >= 13 and len(x) > 1 else list(a.get("axes", []))


@op("Squeeze")
def _squeeze(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    axes = _axes(x, a)
    if not axes:
        return t.squeeze()
    for d in sorted((axis_of(d, t.dim()) for d in axes), reverse=True):
        t = t.squeeze(d)
    return t


@op("Unsqueeze")
def _unsqueeze(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    rank = t.dim() + len(_axes(x, a))
    for d in sorted(axis_of(d, rank) for d in _axes(x, a)):
        t = t.unsqueeze(d)
    return t


@op("Concat")
def _concat(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    parts = [t for t in x if t is not None and not (t.dim() == 1 and t.numel() == 0)]
    return torch.cat(parts or [x[0]], dim=a["axis"])


@op("Split")
def _split(x: list[Any], a: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    t, n = x[0], a["_outputs"]
    axis = axis_of(a.get("axis", 0), t.dim())
    sizes = ints(x[1]) if len(x) > 1 and x[1] is not None else list(a.get("split", []))
    if not sizes:
        chunk = -(-t.shape[axis] // a.get("num_outputs", n))
        sizes = [min(chunk, t.shape[axis] - i * chunk) for i in range(n)]
    return tuple(torch.split(t, sizes, dim=axis))


@op("Slice")
def _slice(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    if a["_opset"] >= 10:
        starts, ends = ints(x[1]), ints(x[2])
        axes = ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    else:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis_of(axis, t.dim())
        index = range(*slice(start, end, step).indices(t.shape[axis]))
        if step == 1:
            t = t.narrow(axis, index.start, len(index))
        else:
            t = t.index_select(axis, _int_tensor(list(index)))
    return t


@op("Gather")
def _gather(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t, idx = x[0], x[1].long()
    axis = axis_of(a.get("axis", 0), t.dim())
    idx = torch.where(idx < 0, idx + t.shape[axis], idx)
    out = t.index_select(axis, idx.reshape(-1))
    return out.reshape(*t.shape[:axis], *idx.shape, *t.shape[axis + 1 :])


@op("Expand")
def _expand(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    shape = np.broadcast_shapes(tuple(x[0].shape), tuple(ints(x[1])))
    return x[0].expand(*shape)


@op("Tile")
def _tile(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return x[0].repeat(*ints(x[1]))


@op("Constant")
def _constant(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    if "value" in a:
        return a["value"]
    for key, dtype in (("value_float", torch.float32), ("value_floats", torch.float32),
                       ("value_int", torch.int64), ("value_ints", torch.int64)):
        if key in a:
            return torch.tensor(a[key], dtype=dtype)
    raise ValueError("unsupported Constant attribute")


@op("ConstantOfShape")
def _constant_of_shape(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    value = a.get("value")
    fill = value.reshape(-1)[0] if value is not None else torch.tensor(0.0)
    return torch.full(ints(x[0]), fill.item(), dtype=fill.dtype)


@op("Range")
def _range(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return torch.arange(x[0].item(), x[1].item(), x[2].item(), dtype=x[0].dtype)


def tensor_attribute(proto: Any) -> torch.Tensor:
    """An ONNX ``TensorProto`` attribute as a torch tensor."""
    return torch.from_numpy(np.array(numpy_helper.to_array(proto)))
