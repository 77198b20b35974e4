"""Magnitude criteria: ``l1`` (sum of |w|) and ``l2`` (Euclidean norm of the slice).

Li et al., *Pruning Filters for Efficient ConvNets*, ICLR 2017 (L1 of filters); the L2
variant follows He et al., *Soft Filter Pruning*, IJCAI 2018. Weights only: data-free.
"""

from __future__ import annotations

import numpy as np

from ..plugins import hookimpl
from .base import Criterion, ScoringContext, reduce_other_axes


class L1(Criterion):
    """``score_c = sum |w_c|`` over the slice of channel c."""

    name = "l1"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        return reduce_other_axes(np.abs(weight.astype(np.float64)), axis)


class L2(Criterion):
    """``score_c = sqrt(sum w_c^2)`` over the slice of channel c."""

    name = "l2"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        return np.sqrt(reduce_other_axes(np.square(weight.astype(np.float64)), axis))


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [L1(), L2()]
