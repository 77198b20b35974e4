"""Recurrent layers: LSTM, GRU and RNN; the hidden size is pruned consistently across gates.

Hidden unit j lives at row ``g*H + j`` of every gate block g of W, R, B (and the
peepholes P), at column j of R, and at position j of Y, Y_h, Y_c and the initial
states. The input size (W's last axis) is a channel space of the input. Directions
are never pruned. ``hidden_size`` is rewritten.
"""

from __future__ import annotations

import numpy as np

from .context import RuleBarrier, RuleContext
from .registry import rule

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _gate_rows(hidden: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """(row in a stacked-gates axis, hidden unit) pairs for ``blocks`` gate blocks."""
    rows = np.arange(blocks * hidden)
    return rows, rows % hidden


@rule(list(GATES))
def recurrent(ctx: RuleContext) -> None:
    if int(ctx.attr("layout", 0)) != 0:
        raise RuleBarrier("batch-first layout")
    gates = GATES[ctx.op_type]
    hidden = int(ctx.attr("hidden_size"))
    # the hidden space: R's last axis (one atom per unit)
    unit = ctx.inp(2, 2)
    rows, units = _gate_rows(hidden, gates)
    ctx.tie(ctx.inp(1, 1), unit, rows, units)  # W rows
    ctx.tie(ctx.inp(2, 1), unit, rows, units)  # R rows
    ctx.reads(2, 2)  # R columns read the previous hidden state
    for i in (1, 2):
        ctx.tie(ctx.inp(i, 0), ctx.inp(1, 0))  # directions
        ctx.block(ctx.inp(i, 0), "direction axis")
    ctx.tie(ctx.inp(0, 2), ctx.inp(1, 2))  # input size
    if ctx.has_input(3):  # B: input and recurrent biases, 2 * gates blocks
        b_rows, b_units = _gate_rows(hidden, 2 * gates)
        ctx.tie(ctx.inp(3, 1), unit, b_rows, b_units)
        ctx.tie(ctx.inp(3, 0), ctx.inp(1, 0))
    if ctx.has_input(4):
        ctx.control(4)
    for i in (5, 6):  # initial_h, initial_c: (dirs, batch, H)
        if ctx.has_input(i):
            ctx.tie(ctx.inp(i, 0), ctx.inp(1, 0))
            ctx.tie(ctx.inp(i, 1), ctx.inp(0, 1))
            ctx.tie(ctx.inp(i, 2), unit)
    if ctx.has_input(7):  # peepholes (dirs, 3H)
        p_rows, p_units = _gate_rows(hidden, 3)
        ctx.tie(ctx.inp(7, 1), unit, p_rows, p_units)
        ctx.tie(ctx.inp(7, 0), ctx.inp(1, 0))
    outs = ctx.outputs
    if len(outs) > 0 and outs[0]:  # Y: (seq, dirs, batch, H)
        ctx.tie(ctx.out(0, 0), ctx.inp(0, 0))
        ctx.tie(ctx.out(0, 1), ctx.inp(1, 0))
        ctx.tie(ctx.out(0, 2), ctx.inp(0, 1))
        ctx.tie(ctx.out(0, 3), unit)
    for o in (1, 2):  # Y_h, Y_c: (dirs, batch, H)
        if len(outs) > o and outs[o]:
            ctx.tie(ctx.out(o, 0), ctx.inp(1, 0))
            ctx.tie(ctx.out(o, 1), ctx.inp(0, 1))
            ctx.tie(ctx.out(o, 2), unit)
    ctx.block(ctx.inp(0, 0), "sequence axis")
    ctx.free(ctx.inp(0, 1))
    r_name = ctx.inputs[2]
    ctx.rewrite_attribute("hidden_size", lambda view: view.new_size(r_name, 2))
