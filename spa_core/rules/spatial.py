"""Spatial operators: Pad, Resize, Upsample, DepthToSpace, SpaceToDepth.

Axes these ops do not resize are tied; resized axes are fixed (spatial). Constant
padding keeps channel correspondence at an offset; reflect/edge padding of a channel
axis reads neighbouring channels, so that axis is blocked.
"""

from __future__ import annotations

import numpy as np

from .context import RuleBarrier, RuleContext
from .registry import rule


def _pads(ctx: RuleContext, rank: int) -> np.ndarray:
    if ctx.opset >= 11:
        pads = ctx.const(1)
        if pads is None:
            raise RuleBarrier("pads are not constants")
        axes = ctx.const(3) if ctx.has_input(3) else None
        if axes is None and ctx.has_input(3):
            raise RuleBarrier("pad axes are not constants")
        if axes is not None:
            full = np.zeros(2 * rank, dtype=np.int64)
            n = len(axes)
            for k, a in enumerate(axes.tolist()):
                full[a % rank], full[a % rank + rank] = pads[k], pads[k + n]
            return full
        return np.asarray(pads, dtype=np.int64)
    return np.asarray(ctx.attr("pads") or ctx.attr("paddings"), dtype=np.int64)


@rule("Pad")
def pad(ctx: RuleContext) -> None:
    rank = len(ctx.in_shape(0))
    pads = _pads(ctx, rank)
    ctx.control(1)
    mode = ctx.attr("mode", "constant")
    in_shape, out_shape = ctx.in_shape(0), ctx.out_shape(0)
    for a in range(rank):
        begin = int(pads[a])
        if begin == 0 and int(pads[a + rank]) == 0:
            ctx.tie(ctx.inp(0, a), ctx.out(0, a))
        elif mode == "constant":
            src = np.arange(in_shape[a])
            dst = src + begin
            ok = (dst >= 0) & (dst < out_shape[a])
            ctx.tie(ctx.inp(0, a), ctx.out(0, a), src[ok], dst[ok])
            if not ok.all():
                ctx.block(ctx.inp(0, a), "cropped by negative padding")
        else:
            ctx.block(ctx.inp(0, a), f"{mode} padding")
            ctx.block(ctx.out(0, a), f"{mode} padding")


def _tie_unresized(ctx: RuleContext) -> list[int]:
    in_shape, out_shape = ctx.in_shape(0), ctx.out_shape(0)
    tied = []
    for a, (n_in, n_out) in enumerate(zip(in_shape, out_shape)):
        if n_in == n_out:
            ctx.tie(ctx.inp(0, a), ctx.out(0, a))
            tied.append(a)
        else:
            ctx.spatial(ctx.inp(0, a))
            ctx.spatial(ctx.out(0, a))
    return tied


@rule("Resize")
def resize(ctx: RuleContext) -> None:
    tied = _tie_unresized(ctx)
    ctx.control(1)
    sizes_index = 3 if ctx.opset >= 11 else None
    if sizes_index is not None and ctx.has_input(sizes_index):
        if ctx.const(sizes_index) is None:
            raise RuleBarrier("output sizes are not constants")
        out = ctx.outputs[0]
        axes = ctx.attr("axes")
        rank = len(ctx.out_shape(0))
        axis_of = list(axes) if axes else list(range(rank))

        def new_sizes(view, old: np.ndarray) -> np.ndarray:
            new = old.copy()
            for k, a in enumerate(axis_of):
                if a % rank in tied:
                    new[k] = view.new_size(out, a % rank)
            return new

        ctx.rewrite_input(sizes_index, new_sizes)


@rule("Upsample")
def upsample(ctx: RuleContext) -> None:
    _tie_unresized(ctx)
    ctx.control(1)


@rule(["DepthToSpace", "SpaceToDepth"])
def depth_space(ctx: RuleContext) -> None:
    """Channels are moved into space (or back): the channel axis is blocked."""
    ctx.tie(ctx.inp(0, 0), ctx.out(0, 0))
    ctx.block(ctx.inp(0, 1), "rearranges channels into space")
    ctx.block(ctx.out(0, 1), "rearranges channels into space")
    for a in (2, 3):
        ctx.spatial(ctx.inp(0, a))
        ctx.spatial(ctx.out(0, a))
