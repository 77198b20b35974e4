"""Matrix products: Gemm and MatMul (a weight on either side, or two activations).

The contracted axis of both operands is one channel space; the free axes of each
operand are tied to the output's; MatMul's batch axes broadcast.
"""

from __future__ import annotations

from .broadcast import tie_broadcast
from .context import RuleBarrier, RuleContext
from .registry import rule


@rule("Gemm")
def gemm(ctx: RuleContext) -> None:
    a_m, a_k = (1, 0) if ctx.attr("transA", 0) else (0, 1)
    b_k, b_n = (1, 0) if ctx.attr("transB", 0) else (0, 1)
    ctx.tie(ctx.inp(0, a_k), ctx.inp(1, b_k))
    ctx.reads(0, a_k)
    ctx.reads(1, b_k)
    ctx.tie(ctx.inp(0, a_m), ctx.out(0, 0))
    ctx.tie(ctx.inp(1, b_n), ctx.out(0, 1))
    if ctx.has_input(2):
        tie_broadcast(ctx, [2])


@rule("MatMul")
def matmul(ctx: RuleContext) -> None:
    ra, rb = len(ctx.in_shape(0)), len(ctx.in_shape(1))
    ry = len(ctx.out_shape(0))
    if ra == 0 or rb == 0:
        raise RuleBarrier("MatMul of a scalar")
    b_k = rb - 2 if rb >= 2 else 0
    ctx.tie(ctx.inp(0, ra - 1), ctx.inp(1, b_k))
    ctx.reads(0, ra - 1)
    ctx.reads(1, b_k)
    if ra >= 2:
        ctx.tie(ctx.inp(0, ra - 2), ctx.out(0, ry - 2 if rb >= 2 else ry - 1))
    if rb >= 2:
        ctx.tie(ctx.inp(1, rb - 1), ctx.out(0, ry - 1))
    # batch axes: numpy broadcasting over all but the last two axes
    y_batch = ctx.out_shape(0)[: ry - (ra >= 2) - (rb >= 2)]
    for i, rank in ((0, ra), (1, rb)):
        batch = ctx.in_shape(i)[: max(rank - 2, 0)]
        offset = len(y_batch) - len(batch)
        for axis, size in enumerate(batch):
            if size == y_batch[axis + offset]:
                ctx.tie(ctx.inp(i, axis), ctx.out(0, axis + offset))
            elif size == 1:
                ctx.free(ctx.inp(i, axis))
            else:
                raise RuleBarrier("MatMul batch axes do not broadcast")
