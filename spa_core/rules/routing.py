"""Operators that route channels: Concat, Split, Slice, Gather.

Concat places each input at an offset of the output axis; Split and Slice take
sub-ranges. Their size constants (split sizes, slice bounds) are rewritten from the
kept channels after pruning. Gather on a weight (an embedding table) ties the table's
row width to the output; the gathered axis itself is never pruned.
"""

from __future__ import annotations

import numpy as np

from .context import RuleBarrier, RuleContext
from .registry import rule

_INT64_MAX = np.iinfo(np.int64).max


def _tie_other_axes(ctx: RuleContext, axis: int, out_index: int, in_index: int = 0) -> None:
    for a in range(len(ctx.in_shape(in_index))):
        if a != axis:
            ctx.tie(ctx.inp(in_index, a), ctx.out(out_index, a))


@rule("Concat")
def concat(ctx: RuleContext) -> None:
    rank = len(ctx.out_shape(0))
    axis = int(ctx.attr("axis")) % rank
    offset = 0
    for i in range(len(ctx.inputs)):
        if not ctx.has_input(i):
            continue
        size = ctx.in_shape(i)[axis]
        _tie_other_axes(ctx, axis, 0, i)
        ctx.tie(ctx.inp(i, axis), ctx.out(0, axis), np.arange(size), offset + np.arange(size))
        offset += size


def _split_axis_and_sizes(ctx: RuleContext) -> tuple[int, list[int]]:
    rank = len(ctx.in_shape(0))
    axis = int(ctx.attr("axis", 0)) % rank
    sizes = [ctx.out_shape(o)[axis] for o in range(len(ctx.outputs))]
    return axis, sizes


def _tie_split(ctx: RuleContext, axis: int, sizes: list[int]) -> None:
    offset = 0
    for o, size in enumerate(sizes):
        _tie_other_axes(ctx, axis, o)
        ctx.tie(ctx.inp(0, axis), ctx.out(0 + o, axis), offset + np.arange(size), np.arange(size))
        offset += size


@rule("Split", since_version=13)
def split(ctx: RuleContext) -> None:
    """Split sizes become an explicit input (``num_outputs`` cannot express uneven sizes)."""
    axis, sizes = _split_axis_and_sizes(ctx)
    _tie_split(ctx, axis, sizes)
    ctx.control(1)
    outs = ctx.outputs
    ctx.rewrite_input(1, lambda view, old: np.array([view.new_size(o, axis) for o in outs], dtype=np.int64))
    if ctx.attr("num_outputs") is not None:
        ctx.rewrite_attribute("num_outputs", lambda view: None)


@rule("Split", since_version=1)
def split_legacy(ctx: RuleContext) -> None:
    axis, sizes = _split_axis_and_sizes(ctx)
    _tie_split(ctx, axis, sizes)
    outs = ctx.outputs
    ctx.rewrite_attribute("split", lambda view: [view.new_size(o, axis) for o in outs])


@rule("Slice", since_version=10)
def slice_(ctx: RuleContext) -> None:
    data_shape = ctx.in_shape(0)
    rank = len(data_shape)
    starts, ends = ctx.const(1), ctx.const(2)
    axes = ctx.const(3) if ctx.has_input(3) else np.arange(len(starts if starts is not None else []))
    steps = ctx.const(4) if ctx.has_input(4) else None
    if starts is None or ends is None or axes is None or (ctx.has_input(4) and steps is None):
        raise RuleBarrier("slice bounds are not constants")
    ctx.control(1)
    steps = np.ones(len(axes), dtype=np.int64) if steps is None else steps
    sliced = {}
    for k, a in enumerate(axes.tolist()):
        a %= rank
        idx = np.arange(data_shape[a])[slice(int(starts[k]), int(ends[k]), int(steps[k]))]
        sliced[a] = (k, idx, int(steps[k]))
    for a in range(rank):
        if a not in sliced:
            ctx.tie(ctx.inp(0, a), ctx.out(0, a))
            continue
        _, idx, step = sliced[a]
        if step != 1:
            ctx.block(ctx.inp(0, a), "strided slice")
            ctx.block(ctx.out(0, a), "strided slice")
            continue
        ctx.tie(ctx.inp(0, a), ctx.out(0, a), idx, np.arange(len(idx)))
    data, out = ctx.inputs[0], ctx.outputs[0]

    def bounds(view, old: np.ndarray, upper: bool) -> np.ndarray:
        new = old.copy()
        for a, (k, idx, step) in sliced.items():
            if step != 1 or len(idx) == 0:
                continue
            kept = view.kept(data, a)
            start = int(np.searchsorted(kept, idx[0]))
            new[k] = start + view.new_size(out, a) if upper else start
        return new

    ctx.rewrite_input(1, lambda view, old: bounds(view, old, upper=False))
    ctx.rewrite_input(2, lambda view, old: bounds(view, old, upper=True))


@rule("Gather")
def gather(ctx: RuleContext) -> None:
    """``out = data.take(indices, axis)``: data's other axes map to the output's."""
    data_rank = len(ctx.in_shape(0))
    axis = int(ctx.attr("axis", 0)) % data_rank
    ind_rank = len(ctx.in_shape(1))
    for a in range(data_rank):
        if a < axis:
            ctx.tie(ctx.inp(0, a), ctx.out(0, a))
        elif a > axis:
            ctx.tie(ctx.inp(0, a), ctx.out(0, a - 1 + ind_rank))
    ctx.block(ctx.inp(0, axis), "gathered axis")
    for a in range(ind_rank):
        ctx.tie(ctx.inp(1, a), ctx.out(0, axis + a))
