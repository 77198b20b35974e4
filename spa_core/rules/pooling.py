"""Pooling and reductions.

Pooling works per channel: batch and channel axes are tied, spatial axes are fixed.
A reduction over an axis couples its elements unless removing an element equals
zeroing it (sum-like reductions), so the reduced axis is blocked for Mean/Max/...
and free for Sum/SumSquare/L1/L2.
"""

from __future__ import annotations

from .context import RuleContext
from .registry import rule

POOLS = [
    "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
]
REDUCTIONS = [
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2",
]
# Removing an element from these equals setting it to zero.
ZERO_NEUTRAL = {"ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2"}
# Opset from which the reduction takes its axes as an input instead of an attribute.
AXES_AS_INPUT = {op: (13 if op == "ReduceSum" else 18) for op in REDUCTIONS}


@rule(POOLS)
def pool(ctx: RuleContext) -> None:
    for o in range(len(ctx.outputs)):
        if not ctx.outputs[o]:
            continue
        ctx.tie(ctx.inp(0, 0), ctx.out(o, 0))
        ctx.tie(ctx.inp(0, 1), ctx.out(o, 1))
        for a in range(2, len(ctx.out_shape(o))):
            ctx.spatial(ctx.out(o, a))
    for a in range(2, len(ctx.in_shape(0))):
        ctx.spatial(ctx.inp(0, a))


def _reduced_axes(ctx: RuleContext, rank: int) -> list[int] | None:
    if ctx.opset >= AXES_AS_INPUT.get(ctx.op_type, 99):
        if not ctx.has_input(1):
            return None
        axes = ctx.const(1)
        if axes is None:
            return []
        ctx.control(1)
        return [int(a) % rank for a in axes.tolist()]
    axes = ctx.attr("axes")
    return None if axes is None else [int(a) % rank for a in axes]


@rule(REDUCTIONS)
def reduction(ctx: RuleContext) -> None:
    rank = len(ctx.in_shape(0))
    axes = _reduced_axes(ctx, rank)
    if axes is None:
        noop = ctx.opset >= AXES_AS_INPUT.get(ctx.op_type, 99) and ctx.attr("noop_with_empty_axes", 0)
        axes = [] if noop else list(range(rank))
    keep = bool(ctx.attr("keepdims", 1))
    out_axis = 0
    for a in range(rank):
        if a in axes:
            if ctx.op_type in ZERO_NEUTRAL:
                ctx.free(ctx.inp(0, a))
            else:
                ctx.block(ctx.inp(0, a), "reduces over this axis")
            if keep:
                ctx.free(ctx.out(0, out_axis))
                out_axis += 1
            continue
        ctx.tie(ctx.inp(0, a), ctx.out(0, out_axis))
        out_axis += 1


@rule(["ArgMax", "ArgMin"])
def arg_reduction(ctx: RuleContext) -> None:
    rank = len(ctx.in_shape(0))
    axis = int(ctx.attr("axis", 0)) % rank
    keep = bool(ctx.attr("keepdims", 1))
    out_axis = 0
    for a in range(rank):
        if a == axis:
            ctx.block(ctx.inp(0, a), "reduces over this axis")
            if keep:
                ctx.free(ctx.out(0, out_axis))
                out_axis += 1
            continue
        ctx.tie(ctx.inp(0, a), ctx.out(0, out_axis))
        out_axis += 1
