"""Reshapes and permutations: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Expand, Tile.

A reshape is split into runs of consecutive axes whose sizes multiply to the same
number on both sides. An axis mapped one-to-one is tied element by element. Within a
run that splits or merges axes, one axis per side (the pivot, outermost first) is
tied through the flat positions (``C -> C*k`` flattening, ``C -> H x D`` attention
heads: whole heads) and the other axes are blocked, since removing a slice of them
removes elements scattered through the other side.
"""

from __future__ import annotations

import numpy as np

from .context import RuleBarrier, RuleContext
from .registry import rule


def axis_runs(src: tuple[int, ...], dst: tuple[int, ...]) -> list[tuple[list[int], list[int]]]:
    """Pair runs of axes of ``src`` and ``dst`` with equal products."""
    runs: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(src) or j < len(dst):
        run_i, run_j = [], []
        p_i = p_j = 1
        if i < len(src):
            p_i *= src[i]
            run_i.append(i)
            i += 1
        if j < len(dst):
            p_j *= dst[j]
            run_j.append(j)
            j += 1
        while p_i != p_j:
            if p_i < p_j and i < len(src):
                p_i *= src[i]
                run_i.append(i)
                i += 1
            elif p_j < p_i and j < len(dst):
                p_j *= dst[j]
                run_j.append(j)
                j += 1
            else:
                raise RuleBarrier(f"cannot match reshape {src} -> {dst}")
        runs.append((run_i, run_j))
    return runs


def _atom_of(sizes: list[int], pivot: int, flat: np.ndarray) -> np.ndarray:
    """Index along axis ``pivot`` of each flat position of a run of axes ``sizes``."""
    inner = int(np.prod(sizes[pivot + 1 :], dtype=np.int64))
    return (flat // inner) % sizes[pivot]


def tie_reshape(ctx: RuleContext, in_index: int = 0, out_index: int = 0) -> None:
    """Tie a reshape's input and output axes run by run.

    In a run that splits or merges axes, one *pivot* axis per side carries the
    channels (tied through the flat positions); the other non-trivial axes are blocked.
    The pivot starts at the outermost axis; when the analysis finds that choice leaves
    nothing prunable (``3C -> (3, H, D)`` of a fused QKV projection), it moves the pivot
    inward and analyses again (see :meth:`RuleContext.pivot`).
    """
    src, dst = ctx.in_shape(in_index), ctx.out_shape(out_index)
    if int(np.prod(src)) != int(np.prod(dst)):
        raise RuleBarrier(f"reshape changes the element count {src} -> {dst}")
    for run_number, (run_i, run_j) in enumerate(axis_runs(src, dst)):
        big_i = [a for a in run_i if src[a] > 1]
        big_j = [a for a in run_j if dst[a] > 1]
        for a in run_i:
            if src[a] <= 1:
                ctx.free(ctx.inp(in_index, a))
        for a in run_j:
            if dst[a] <= 1:
                ctx.free(ctx.out(out_index, a))
        if not big_i and not big_j:
            continue
        if len(big_i) == 1 and len(big_j) == 1:
            ctx.tie(ctx.inp(in_index, big_i[0]), ctx.out(out_index, big_j[0]))
            continue
        sizes_i, sizes_j = [src[a] for a in big_i], [dst[a] for a in big_j]
        # candidate pivot pairs, outermost first: (0, 0), (0, 1), ..., (1, 0), ...
        combo = ctx.pivot(run_number, len(big_i) * len(big_j))
        p_i, p_j = divmod(combo, len(big_j))
        flat = np.arange(int(np.prod(sizes_i, dtype=np.int64)))
        pairs = np.unique(np.stack([_atom_of(sizes_i, p_i, flat), _atom_of(sizes_j, p_j, flat)]), axis=1)
        x, y = ctx.inp(in_index, big_i[p_i]), ctx.out(out_index, big_j[p_j])
        ctx.tie(x, y, pairs[0], pairs[1])
        ctx.pivot_dim(run_number, y)
        for k, a in enumerate(big_i):
            if k != p_i:
                ctx.block(ctx.inp(in_index, a), "inner axis of a reshape", soft=True)
        for k, a in enumerate(big_j):
            if k != p_j:
                ctx.block(ctx.out(out_index, a), "inner axis of a reshape", soft=True)



@rule("Reshape", since_version=5)
def reshape(ctx: RuleContext) -> None:
    tie_reshape(ctx)
    ctx.control(1)
    if ctx.const(1) is None:
        raise RuleBarrier("target shape is not a constant")
    out = ctx.outputs[0]

    def new_target(view, old: np.ndarray) -> np.ndarray:
        new = old.copy()
        for j, v in enumerate(old):
            if v not in (0, -1):
                new[j] = view.new_size(out, j)
        return new

    ctx.rewrite_input(1, new_target)


@rule(["Flatten", "Squeeze", "Unsqueeze"])
def flatten_like(ctx: RuleContext) -> None:
    """Axis lists of Squeeze/Unsqueeze and Flatten's axis never change when pruning.

    A squeezed axis holds one element: removing it would leave no tensor at all (the
    ``q``/``k``/``v`` pieces of a fused projection split on the ``3`` axis), so it is a
    barrier; a reshape above it then moves its pivot to the heads axis.
    """
    tie_reshape(ctx)
    ctx.control(1)
    if ctx.op_type == "Squeeze":
        shape = ctx.in_shape(0)
        axes = ctx.const(1) if ctx.has_input(1) else ctx.attr("axes")
        if axes is None:
            axes = [a for a, n in enumerate(shape) if n == 1]
        for a in np.asarray(axes, dtype=np.int64).ravel().tolist():
            ctx.block(ctx.inp(0, a % len(shape)), "squeezed axis")


@rule("Transpose")
def transpose(ctx: RuleContext) -> None:
    rank = len(ctx.in_shape(0))
    perm = ctx.attr("perm") or list(reversed(range(rank)))
    for out_axis, in_axis in enumerate(perm):
        ctx.tie(ctx.inp(0, in_axis), ctx.out(0, out_axis))


@rule("Expand", since_version=8)
def expand(ctx: RuleContext) -> None:
    from .broadcast import tie_broadcast

    tie_broadcast(ctx, [0])
    ctx.control(1)
    if ctx.const(1) is None:
        raise RuleBarrier("target shape is not a constant")
    out = ctx.outputs[0]
    rank = len(ctx.out_shape(0))

    def new_shape(view, old: np.ndarray) -> np.ndarray:
        new = old.copy()
        offset = rank - len(old)
        for j, v in enumerate(old):
            if v != 1:
                new[j] = view.new_size(out, j + offset)
        return new

    ctx.rewrite_input(1, new_shape)


@rule("Tile", since_version=6)
def tile(ctx: RuleContext) -> None:
    repeats = ctx.const(1)
    if repeats is None:
        raise RuleBarrier("repeats are not a constant")
    ctx.control(1)
    for axis, r in enumerate(repeats.tolist()):
        if r == 1:
            ctx.tie(ctx.inp(0, axis), ctx.out(0, axis))
        else:
            ctx.block(ctx.inp(0, axis), "tiled axis")
            ctx.block(ctx.out(0, axis), "tiled axis")


@rule("ConstantOfShape")
def constant_of_shape(ctx: RuleContext) -> None:
    """A tensor made from a shape constant: its axes follow whatever it is combined with."""
    ctx.control(0)
    for a in range(len(ctx.out_shape(0))):
        ctx.free(ctx.out(0, a))
    if ctx.const(0) is None:
        raise RuleBarrier("shape is not a constant")
    out = ctx.outputs[0]
    ctx.rewrite_input(0, lambda view, old: np.array([view.new_size(out, j) for j in range(len(old))], dtype=old.dtype))
