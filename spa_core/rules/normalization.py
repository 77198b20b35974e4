"""Normalisations and softmax.

Per-channel normalisations (BatchNorm, InstanceNorm) tie their parameters to the
channel axis. Normalising *over* an axis (LayerNorm's last axes, Softmax's axis, LRN
across channels) couples all its elements: that axis is a barrier, because removing
one element changes every other one (removal is not zeroing there). GroupNorm is
pruned in whole groups.
"""

from __future__ import annotations

import numpy as np

from .context import RuleBarrier, RuleContext
from .registry import rule


def _tie_all_axes(ctx: RuleContext, skip: set[int] = frozenset()) -> None:
    for axis in range(len(ctx.in_shape(0))):
        if axis not in skip:
            ctx.tie(ctx.inp(0, axis), ctx.out(0, axis))


@rule("BatchNormalization")
def batch_norm(ctx: RuleContext) -> None:
    _tie_all_axes(ctx)
    channel = ctx.out(0, 1) if len(ctx.out_shape(0)) > 1 else ctx.out(0, 0)
    for i in range(1, 5):
        ctx.tie(ctx.inp(i, 0), channel)
    ctx.statistic(3)
    ctx.statistic(4)
    for o in range(1, len(ctx.outputs)):  # training-mode running statistics
        if ctx.outputs[o]:
            ctx.tie(ctx.out(o, 0), channel)


@rule("InstanceNormalization")
def instance_norm(ctx: RuleContext) -> None:
    _tie_all_axes(ctx)
    for i in (1, 2):
        ctx.tie(ctx.inp(i, 0), ctx.out(0, 1))


@rule("LayerNormalization", since_version=17)
def layer_norm(ctx: RuleContext) -> None:
    rank = len(ctx.in_shape(0))
    axis = int(ctx.attr("axis", -1)) % rank
    _tie_all_axes(ctx, skip=set(range(axis, rank)))
    for a in range(axis, rank):
        ctx.block(ctx.inp(0, a), "normalises over this axis")
        ctx.block(ctx.out(0, a), "normalises over this axis")
    for i in (1, 2):
        if ctx.has_input(i):
            for a in range(len(ctx.in_shape(i))):
                ctx.block(ctx.inp(i, a), "normalises over this axis")
    for o in (1, 2):  # Mean, InvStdDev: reduced shape
        if len(ctx.outputs) > o and ctx.outputs[o]:
            for a in range(len(ctx.out_shape(o))):
                if a < axis:
                    ctx.tie(ctx.out(o, a), ctx.out(0, a))
                else:
                    ctx.free(ctx.out(o, a))


@rule("GroupNormalization", since_version=18)
def group_norm(ctx: RuleContext) -> None:
    """Channels of one group are one class; ``num_groups`` follows the kept groups."""
    channels = ctx.in_shape(0)[1]
    groups = int(ctx.attr("num_groups"))
    if channels % groups:
        raise RuleBarrier("channels not divisible by num_groups")
    per = channels // groups
    _tie_all_axes(ctx)
    x = ctx.inp(0, 1)
    ctx.tie(x, x, np.repeat(np.arange(groups) * per, per), np.arange(channels))
    for i in (1, 2):
        size = ctx.in_shape(i)[0]
        if size == channels:
            ctx.tie(ctx.inp(i, 0), x)
        else:  # opset 18: one scale per group
            ctx.tie(ctx.inp(i, 0), x, np.arange(groups), np.arange(groups) * per)
    ctx.rewrite_attribute("num_groups", lambda view: view.new_size(ctx.inputs[0], 1) // per)


def _over_axis(ctx: RuleContext, axes: list[int], reason: str) -> None:
    rank = len(ctx.in_shape(0))
    axes = [a % rank for a in axes]
    _tie_all_axes(ctx, skip=set(axes))
    for a in axes:
        ctx.block(ctx.inp(0, a), reason)
        ctx.block(ctx.out(0, a), reason)


@rule(["Softmax", "LogSoftmax", "Hardmax"], since_version=13)
def softmax(ctx: RuleContext) -> None:
    _over_axis(ctx, [int(ctx.attr("axis", -1))], "normalises over this axis")


@rule(["Softmax", "LogSoftmax", "Hardmax"], since_version=1)
def softmax_legacy(ctx: RuleContext) -> None:
    """Before opset 13 the input is coerced to 2-D at ``axis``: all later axes are one."""
    rank = len(ctx.in_shape(0))
    axis = int(ctx.attr("axis", 1)) % rank
    _over_axis(ctx, list(range(axis, rank)), "normalises over this axis")


@rule("LpNormalization")
def lp_norm(ctx: RuleContext) -> None:
    _over_axis(ctx, [int(ctx.attr("axis", -1))], "normalises over this axis")


@rule("LRN")
def lrn(ctx: RuleContext) -> None:
    _over_axis(ctx, [1], "normalises across neighbouring channels")


@rule("MeanVarianceNormalization")
def mvn(ctx: RuleContext) -> None:
    _over_axis(ctx, list(ctx.attr("axes", [0, 2, 3])), "normalises over this axis")
