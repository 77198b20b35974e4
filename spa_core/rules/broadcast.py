"""Shared helper: tie the axes of broadcasting operands to the output."""

from __future__ import annotations

from .context import RuleBarrier, RuleContext


def tie_broadcast(ctx: RuleContext, input_indices: list[int], output_index: int = 0) -> None:
    """Numpy-style broadcasting: equal sizes are tied, size-1 axes are free."""
    out_shape = ctx.out_shape(output_index)
    rank = len(out_shape)
    for i in input_indices:
        if not ctx.has_input(i):
            continue
        shape = ctx.in_shape(i)
        offset = rank - len(shape)
        if offset < 0:
            raise RuleBarrier("operand of higher rank than the output")
        for axis, size in enumerate(shape):
            out_axis = axis + offset
            if size == out_shape[out_axis]:
                ctx.tie(ctx.inp(i, axis), ctx.out(output_index, out_axis))
            elif size == 1:
                ctx.free(ctx.inp(i, axis))
            else:
                raise RuleBarrier(f"cannot broadcast size {size} to {out_shape[out_axis]}")
    for axis in range(rank):
        ctx.free(ctx.out(output_index, axis))
