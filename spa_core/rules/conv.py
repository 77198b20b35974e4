"""Convolutions: Conv and ConvTranspose, 1-D/2-D/3-D, plain, grouped and depthwise.

* plain (``group == 1``): input channels are the weight's input axis, output channels
  the weight's output axis and the bias;
* depthwise (one input channel per group): a group is pruned whole, together with its
  output channels; the ``group`` attribute shrinks accordingly;
* grouped (several input channels per group): position p of every group is one
  channel, so every group keeps the same number of channels and ``group`` is unchanged.
"""

from __future__ import annotations

import numpy as np

from .context import Dim, RuleBarrier, RuleContext
from .registry import rule


def _common(ctx: RuleContext) -> None:
    ctx.reads(0, 1)  # every output channel reads the input channels (even one of its own class)
    ctx.tie(ctx.inp(0, 0), ctx.out(0, 0))
    for axis in range(2, len(ctx.in_shape(0))):
        ctx.spatial(ctx.inp(0, axis))
        ctx.spatial(ctx.out(0, axis))
    for axis in range(2, len(ctx.in_shape(1))):
        ctx.spatial(ctx.inp(1, axis))


def _tie_groups_positionally(ctx: RuleContext, dim: Dim, groups: int, per_group: int) -> None:
    """Tie position p of every group of ``dim`` together."""
    base = np.tile(np.arange(per_group), groups - 1)
    others = np.arange(per_group, per_group * groups)
    ctx.tie(dim, dim, base, others)


def _depthwise_group_count(ctx: RuleContext) -> None:
    ctx.rewrite_attribute("group", lambda view: view.new_size(ctx.inputs[0], 1))


@rule("Conv")
def conv(ctx: RuleContext) -> None:
    _common(ctx)
    groups = int(ctx.attr("group", 1))
    c_in = ctx.in_shape(0)[1]
    m_out = ctx.in_shape(1)[0]
    x, w_out, w_in, y = ctx.inp(0, 1), ctx.inp(1, 0), ctx.inp(1, 1), ctx.out(0, 1)
    ctx.tie(w_out, y)
    if ctx.has_input(2):
        ctx.tie(ctx.inp(2, 0), y)
    if c_in % groups or m_out % groups:
        raise RuleBarrier("channels not divisible by group")
    per_in, per_out = c_in // groups, m_out // groups
    if groups == 1:
        ctx.tie(x, w_in)
    elif per_in == 1:
        ctx.free(w_in)
        ctx.tie(x, y, np.repeat(np.arange(groups), per_out), np.arange(m_out))
        _depthwise_group_count(ctx)
    else:
        ctx.tie(x, w_in, np.arange(c_in), np.tile(np.arange(per_in), groups))
        _tie_groups_positionally(ctx, y, groups, per_out)


@rule("ConvTranspose")
def conv_transpose(ctx: RuleContext) -> None:
    _common(ctx)
    groups = int(ctx.attr("group", 1))
    c_in = ctx.in_shape(0)[1]
    per_out = ctx.in_shape(1)[1]
    m_out = per_out * groups
    x, w_in, w_out, y = ctx.inp(0, 1), ctx.inp(1, 0), ctx.inp(1, 1), ctx.out(0, 1)
    ctx.tie(x, w_in)
    if ctx.has_input(2):
        ctx.tie(ctx.inp(2, 0), y)
    if c_in % groups:
        raise RuleBarrier("channels not divisible by group")
    per_in = c_in // groups
    if groups == 1:
        ctx.tie(w_out, y)
    elif per_in == 1:
        ctx.free(w_out)
        ctx.tie(x, y, np.repeat(np.arange(groups), per_out), np.arange(m_out))
        _depthwise_group_count(ctx)
    else:
        _tie_groups_positionally(ctx, x, groups, per_in)
        ctx.tie(w_out, y, np.tile(np.arange(per_out), groups), np.arange(m_out))
