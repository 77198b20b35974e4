"""``bn_scale``: Network Slimming, the BatchNorm scaling factor of each channel.

Liu, Li, Shen, Huang, Yan & Zhang, *Learning Efficient Convolutional Networks through
Network Slimming*, ICCV 2017. Every channel is multiplied by its BatchNorm scale ``γ``;
training with an L1 penalty on ``γ`` drives unneeded channels' ``γ`` towards 0, and
channels are pruned by ``|γ|``. Here: ``score_c = |γ_c|`` for the scale input of a
``BatchNormalization`` (or ``InstanceNormalization``) node; the group's other members
score 0, so the group is ranked by its normalisation scales alone (summed when several
BatchNorms share the group, as across a residual addition).

A group without a BatchNorm scale (Linear/attention groups of a ViT, exports that folded
BatchNorm into the convolution) falls back to the L1 norm of the slices. The criterion
reads the graph from ``ScoringContext.analysis``, which :func:`spa_core.prune_onnx` sets.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..plugins import hookimpl
from .base import Criterion, ScoringContext, reduce_other_axes

log = logging.getLogger(__name__)

# op type -> input position of the per-channel scale
SCALE_INPUTS = {"BatchNormalization": 1, "InstanceNormalization": 1}


def scale_initializers(analysis: Any) -> set[str]:
    """Initializers that are the per-channel scale of a normalisation node."""
    graph = analysis.graph
    found = set()
    for node in graph.model.graph.node:
        pos = SCALE_INPUTS.get(node.op_type)
        if pos is not None and len(node.input) > pos and node.input[pos] in graph.initializers:
            found.add(node.input[pos])
    return found


def groups_with_scales(analysis: Any) -> set[tuple[str, int]]:
    """Every member ``(initializer, axis)`` of a group that has a normalisation scale."""
    scales = scale_initializers(analysis)
    members: set[tuple[str, int]] = set()
    for group in analysis.groups:
        if any(name in scales for name, _ in group.members):
            members.update((name, axis) for name, axis in group.members)
    return members


class BnScale(Criterion):
    """``score_c = |γ_c|`` of the group's BatchNorm scales (Liu et al., ICCV 2017); L1 without one."""

    name = "bn_scale"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        scales, covered = self._tables(ctx)
        if name in scales and weight.ndim == 1:
            return np.abs(weight.astype(np.float64))
        if (name, axis) in covered:
            return np.zeros(weight.shape[axis])
        return reduce_other_axes(np.abs(weight.astype(np.float64)), axis)

    @staticmethod
    def _tables(ctx: ScoringContext) -> tuple[set[str], set[tuple[str, int]]]:
        """Scale initializers and covered members of ``ctx.analysis`` (cached in ``ctx.extras``)."""
        if ctx.analysis is None:
            log.warning("bn_scale: no analysis in the scoring context; ranking every group by L1")
            return set(), set()
        key = f"bn_scale:{id(ctx.analysis)}"
        if key not in ctx.extras:
            ctx.extras[key] = (scale_initializers(ctx.analysis), groups_with_scales(ctx.analysis))
        return ctx.extras[key]


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [BnScale()]
