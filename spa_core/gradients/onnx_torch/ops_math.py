"""Element-wise, matrix and reduction operators of the ONNX-in-torch executor."""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import torch
import torch.nn.functional as F

from .registry import DTYPES, axis_of, ints, op

UNARY = {
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Exp": torch.exp, "Log": torch.log,
    "Sqrt": torch.sqrt, "Abs": torch.abs, "Neg": torch.neg, "Reciprocal": torch.reciprocal, "Erf": torch.erf,
    "Floor": torch.floor, "Ceil": torch.ceil, "Sign": torch.sign, "Softplus": F.softplus, "Sin": torch.sin,
    "Cos": torch.cos, "Not": torch.logical_not, "Softsign": F.softsign, "Mish": F.mish, "Round": torch.round,
    "Identity": lambda x: x,
}
BINARY = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Pow": torch.pow, "Equal": torch.eq,
    "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le, "GreaterOrEqual": torch.ge,
    "And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor,
}


def _unary(fn: Any) -> Any:
    return lambda x, a: fn(x[0])


def _binary(fn: Any) -> Any:
    return lambda x, a: fn(x[0], x[1])


for _name, _fn in UNARY.items():
    op(_name)(_unary(_fn))
for _name, _fn in BINARY.items():
    op(_name)(_binary(_fn))


@op("Div")
def _div(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    if x[0].is_floating_point() or x[1].is_floating_point():
        return x[0] / x[1]
    return torch.div(x[0], x[1], rounding_mode="trunc")


@op("Max", "Min", "Sum", "Mean")
def _variadic(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    kind = a["_op"]
    fn = {"Max": torch.maximum, "Min": torch.minimum, "Sum": torch.add, "Mean": torch.add}[kind]
    out = reduce(fn, [t for t in x if t is not None])
    return out / len(x) if kind == "Mean" else out


@op("Where")
def _where(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return torch.where(x[0].bool(), x[1], x[2])


@op("LeakyRelu")
def _leaky(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return F.leaky_relu(x[0], a.get("alpha", 0.01))


@op("Elu")
def _elu(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return F.elu(x[0], a.get("alpha", 1.0))


@op("Selu")
def _selu(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    alpha, gamma = a.get("alpha", 1.67326319217681884765625), a.get("gamma", 1.05070102214813232421875)
    return gamma * torch.where(x[0] > 0, x[0], alpha * (torch.exp(x[0]) - 1))


@op("PRelu")
def _prelu(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return torch.where(x[0] >= 0, x[0], x[0] * x[1])


@op("HardSigmoid")
def _hard_sigmoid(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return torch.clamp(a.get("alpha", 0.2) * x[0] + a.get("beta", 0.5), 0.0, 1.0)


@op("HardSwish")
def _hard_swish(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return x[0] * torch.clamp(x[0] / 6.0 + 0.5, 0.0, 1.0)


@op("Gelu")
def _gelu(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return F.gelu(x[0], approximate=a.get("approximate", "none"))


@op("Clip")
def _clip(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    low = x[1] if len(x) > 1 and x[1] is not None else a.get("min")
    high = x[2] if len(x) > 2 and x[2] is not None else a.get("max")
    out = x[0]
    if low is not None:
        out = torch.maximum(out, torch.as_tensor(low, dtype=out.dtype))
    if high is not None:
        out = torch.minimum(out, torch.as_tensor(high, dtype=out.dtype))
    return out


@op("Softmax", "LogSoftmax")
def _softmax(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    fn = torch.softmax if a["_op"] == "Softmax" else torch.log_softmax
    t = x[0]
    if a["_opset"] >= 13:
        return fn(t, dim=a.get("axis", -1))
    axis = axis_of(a.get("axis", 1), t.dim())  # before opset 13: softmax over the flattened tail
    flat = t.reshape(int(math.prod(t.shape[:axis])), -1)
    return fn(flat, dim=1).reshape(t.shape)


@op("Cast")
def _cast(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return x[0].to(DTYPES[a["to"]])


@op("CastLike")
def _cast_like(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return x[0].to(x[1].dtype)


@op("MatMul")
def _matmul(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return torch.matmul(x[0], x[1])


@op("Gemm")
def _gemm(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    A = x[0].t() if a.get("transA", 0) else x[0]
    B = x[1].t() if a.get("transB", 0) else x[1]
    y = a.get("alpha", 1.0) * (A @ B)
    if len(x) > 2 and x[2] is not None:
        y = y + a.get("beta", 1.0) * x[2]
    return y


@op("Einsum")
def _einsum(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    return torch.einsum(a["equation"], *x)


# opset from which the reduction's axes moved from an attribute to an input
_AXES_INPUT_SINCE = {"ReduceSum": 13}
_REDUCERS = {
    "ReduceMean": lambda t, d, k: t.mean(dim=d, keepdim=k),
    "ReduceSum": lambda t, d, k: t.sum(dim=d, keepdim=k),
    "ReduceMax": lambda t, d, k: t.amax(dim=d, keepdim=k),
    "ReduceMin": lambda t, d, k: t.amin(dim=d, keepdim=k),
    "ReduceProd": lambda t, d, k: _prod(t, d, k),
    "ReduceSumSquare": lambda t, d, k: (t * t).sum(dim=d, keepdim=k),
    "ReduceL2": lambda t, d, k: torch.sqrt((t * t).sum(dim=d, keepdim=k)),
    "ReduceL1": lambda t, d, k: t.abs().sum(dim=d, keepdim=k),
}


def _prod(t: torch.Tensor, dims: list[int], keep: bool) -> torch.Tensor:
    for d in sorted(dims, reverse=True):
        t = t.prod(dim=d, keepdim=keep)
    return t


@op(*_REDUCERS)
def _reduce(x: list[Any], a: dict[str, Any]) -> torch.Tensor:
    name, t = a["_op"], x[0]
    from_input = a["_opset"] >= _AXES_INPUT_SINCE.get(name, 18)
    axes = ints(x[1] if len(x) > 1 else None) if from_input else list(a.get("axes", []))
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return t
        axes = list(range(t.dim()))
    dims = [axis_of(d, t.dim()) for d in axes]
    return _REDUCERS[name](t, dims, bool(a.get("keepdims", 1)))
