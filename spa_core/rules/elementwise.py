"""Element-wise operators: every channel is computed from the same channel only.

Unary ops tie each input axis to the same output axis. Binary and variadic ops
broadcast (numpy rules): equal-sized axes are tied, size-1 axes are free, so a
per-channel constant (a bias, a layer scale, a PRelu slope) is pruned with the
channels it applies to.
"""

from __future__ import annotations

from .broadcast import tie_broadcast
from .context import RuleContext
from .registry import rule

UNARY = [
    "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Softplus", "Softsign", "Gelu", "Mish", "Swish", "Exp", "Log", "Abs",
    "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin",
    "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf", "Not", "IsNaN", "IsInf",
    "ThresholdedRelu", "Shrink", "Identity", "Dropout", "Cast", "CastLike", "Clip", "BitwiseNot",
]

BROADCASTING = [
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Greater",
    "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Mod", "BitShift",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Where", "PRelu",
]


@rule(UNARY)
def unary(ctx: RuleContext) -> None:
    """Output k (and a Dropout mask) has input 0's shape; extra inputs are scalars."""
    rank = len(ctx.in_shape(0))
    for o in range(len(ctx.outputs)):
        if not ctx.outputs[o]:
            continue
        for axis in range(rank):
            ctx.tie(ctx.inp(0, axis), ctx.out(o, axis))
    ctx.control(1)


@rule(BROADCASTING)
def broadcasting(ctx: RuleContext) -> None:
    tie_broadcast(ctx, list(range(len(ctx.inputs))))
