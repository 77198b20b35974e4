"""Convolution, pooling, normalisation and resizing operators of the ONNX-in-torch executor.

ONNX writes padding as ``[x1_begin, x2_begin, ..., x1_end, x2_end]`` and may ask for
``SAME_UPPER``/``SAME_LOWER`` (jax2onnx does); torch wants symmetric padding, so
asymmetric padding is applied with ``F.pad`` first.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .registry import ints, op

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def onnx_pads(spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int], a: dict[str, Any]) -> list[int]:
    """Explicit ``[begins..., ends...]`` padding, resolving ``auto_pad``."""
    nd = len(spatial)
    mode = a.get("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begins.append(small if mode == "SAME_UPPER" else big)
            ends.append(big if mode == "SAME_UPPER" else small)
        return begins + ends
    if mode == "VALID":
        return [0] * (2 * nd)
    return list(a.get("pads", [0] * (2 * nd)))


def torch_pad(pads: list[int]) -> list[int]:
    """ONNX ``[begins..., ends...]`` over spatial axes -> ``F.pad``'s last-axis-first pairs."""
    nd = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(nd)):
        out += [pads[i], pads[i + nd]]
    return out


def _symmetric(pads: list[int]) -> list[int] | None:
    nd = len(pads) // 2
    return pads[:nd] if pads[:nd] == pads[nd:] else None


def _window(x: torch.Tensor, a: dict[str, Any], kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    nd = len(kernel)
    strides = list(a.get("strides", [1] * nd))
    dilations = list(a.get("dilations", [1] * nd))
    pads = onnx_pads(list(x.shape[2:]), kernel, strides, dilations, a)
    return strides, dilations, pads


@op("Conv")
def _conv(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    inp, w = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    kernel = list(a.get("kernel_shape", w.shape[2:]))
    strides, dilations, pads = _window(inp, a, kernel)
    sym = _symmetric(pads)
    if sym is None:
        inp, sym = F.pad(inp, torch_pad(pads)), [0] * len(kernel)
    return CONV[len(kernel)](inp, w, bias, strides, sym, dilations, a.get("group", 1))


@op("ConvTranspose")
def _conv_transpose(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    inp, w = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    nd = w.dim() - 2
    strides = list(a.get("strides", [1] * nd))
    dilations = list(a.get("dilations", [1] * nd))
    out_pad = list(a.get("output_padding", [0] * nd))
    y = CONV_T[nd](inp, w, bias, strides, 0, out_pad, a.get("group", 1), dilations)
    full = list(y.shape[2:])
    if "output_shape" in a:
        target = list(a["output_shape"])[-nd:]
        total = [f - t for f, t in zip(full, target)]
        upper = a.get("auto_pad", "NOTSET") != "SAME_LOWER"
        begins = [t // 2 if upper else t - t // 2 for t in total]
        pads = begins + [t - b for t, b in zip(total, begins)]
    elif a.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        target = [s * st for s, st in zip(inp.shape[2:], strides)]
        total = [f - t for f, t in zip(full, target)]
        upper = a["auto_pad"] == "SAME_UPPER"
        begins = [t // 2 if upper else t - t // 2 for t in total]
        pads = begins + [t - b for t, b in zip(total, begins)]
    else:
        pads = list(a.get("pads", [0] * (2 * nd)))
    for i in range(nd):
        y = y.narrow(2 + i, pads[i], full[i] - pads[i] - pads[i + nd])
    return y


@op("MaxPool")
def _max_pool(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    kernel = list(a["kernel_shape"])
    strides, dilations, pads = _window(x[0], a, kernel)
    inp, sym = x[0], _symmetric(pads)
    if sym is None or any(p * 2 > k for p, k in zip(sym, kernel)):
        inp, sym = F.pad(inp, torch_pad(pads), value=float("-inf")), [0] * len(kernel)
    return MAX_POOL[len(kernel)](inp, kernel, strides, sym, dilations, bool(a.get("ceil_mode", 0)))


@op("AveragePool")
def _avg_pool(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    kernel = list(a["kernel_shape"])
    strides, _, pads = _window(x[0], a, kernel)
    include = bool(a.get("count_include_pad", 0))
    ceil = bool(a.get("ceil_mode", 0))
    pool = AVG_POOL[len(kernel)]
    sym = _symmetric(pads)
    if sym is not None and all(p * 2 <= k for p, k in zip(sym, kernel)):
        return pool(x[0], kernel, strides, sym, ceil, include)
    padded = F.pad(x[0], torch_pad(pads))
    if include:
        return pool(padded, kernel, strides, 0, ceil, True)
    ones = F.pad(torch.ones_like(x[0][:1, :1]), torch_pad(pads))
    return pool(padded, kernel, strides, 0, ceil, True) / pool(ones, kernel, strides, 0, ceil, True)


@op("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    dims = tuple(range(2, x[0].dim()))
    return x[0].mean(dim=dims, keepdim=True) if a["_op"] == "GlobalAveragePool" else x[0].amax(dim=dims, keepdim=True)


@op("BatchNormalization")
def _batch_norm(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    shape = [1, -1] + [1] * (t.dim() - 2)
    if a.get("_batch_statistics") or a.get("training_mode"):
        axes = [0, *range(2, t.dim())]
        mean, var = t.mean(dim=axes, keepdim=True), t.var(dim=axes, unbiased=False, keepdim=True)
    else:
        mean, var = x[3].reshape(shape), x[4].reshape(shape)
    inv = torch.rsqrt(var + a.get("epsilon", 1e-5))
    return (t - mean) * inv * x[1].reshape(shape) + x[2].reshape(shape)


@op("InstanceNormalization")
def _instance_norm(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return F.instance_norm(x[0], weight=x[1], bias=x[2], eps=a.get("epsilon", 1e-5))


@op("LayerNormalization")
def _layer_norm(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    axis = a.get("axis", -1)
    axis = axis + t.dim() if axis < 0 else axis
    dims = tuple(range(axis, t.dim()))
    mean = t.mean(dim=dims, keepdim=True)
    var = ((t - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (t - mean) / torch.sqrt(var + a.get("epsilon", 1e-5)) * x[1]
    return y + x[2] if len(x) > 2 and x[2] is not None else y


@op("Dropout")
def _dropout(x: list[Any], a: dict[str, Any]) -> Any:
    if a["_outputs"] > 1:
        return x[0], torch.ones_like(x[0], dtype=torch.bool)
    return x[0]


@op("Pad")
def _pad(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    if a["_opset"] >= 11:
        pads = ints(x[1])
        value = float(x[2].reshape(-1)[0]) if len(x) > 2 and x[2] is not None and x[2].numel() else 0.0
        axes = ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(t.dim()))
    else:
        pads, value, axes = list(a["pads"]), a.get("value", 0.0), list(range(t.dim()))
    axes = [d + t.dim() if d < 0 else d for d in axes]
    n = len(axes)
    full = [0] * (2 * t.dim())
    for i, d in enumerate(axes):
        full[d], full[d + t.dim()] = pads[i], pads[i + n]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}[a.get("mode", "constant")]
    spec = []
    for d in reversed(range(t.dim())):
        spec += [full[d], full[d + t.dim()]]
    while len(spec) > 2 and spec[-1] == 0 and spec[-2] == 0:  # torch pads only the trailing axes
        spec = spec[:-2]
    return F.pad(t, spec, mode=mode, value=value) if mode == "constant" else F.pad(t, spec, mode=mode)


@op("Resize", "Upsample")
def _resize(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    t = x[0]
    if a["_op"] == "Upsample":
        scales = [float(v) for v in (x[1].tolist() if len(x) > 1 else a["scales"])]
        sizes: list[int] = []
    else:
        scales = [float(v) for v in x[2].reshape(-1).tolist()] if len(x) > 2 and x[2] is not None and x[2].numel() else []
        sizes = ints(x[3]) if len(x) > 3 and x[3] is not None else []
    size = sizes[2:] if sizes else [int(math.floor(s * f)) for s, f in zip(t.shape[2:], scales[2:])]
    mode = a.get("mode", "nearest")
    coord = a.get("coordinate_transformation_mode", "half_pixel")
    if mode == "nearest":
        return F.interpolate(t, size=size, mode="nearest")
    kind = {1: "linear", 2: "bilinear", 3: "trilinear"}[t.dim() - 2] if mode == "linear" else "bicubic"
    return F.interpolate(t, size=size, mode=kind, align_corners=coord == "align_corners")
