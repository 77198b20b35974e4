"""``fpgm``: Filter Pruning via Geometric Median.

He, Liu, Wang, Hu & Yang, *Filter Pruning via Geometric Median for Deep Convolutional
Neural Networks Acceleration*, CVPR 2019. Filters close to the geometric median of
their layer are the ones the others can best replace, so they are pruned first. The
paper's practical criterion: ``score_c = Σ_d ||F_c - F_d||₂`` over the layer's slices
``F`` (a small sum of distances = near the median = redundant). Applied here to every
parameter slice along the scored axis (output filters, and input slices of consumers),
then reduced over the group like any criterion. Weights only: data-free.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from ..plugins import hookimpl
from .base import Criterion, ScoringContext


class Fpgm(Criterion):
    """``score_c = Σ_d ||F_c - F_d||₂`` over the slices along the axis (He et al., CVPR 2019)."""

    name = "fpgm"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        slices = np.moveaxis(weight.astype(np.float64), axis, 0).reshape(weight.shape[axis], -1)
        return cdist(slices, slices).sum(axis=1)


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [Fpgm()]
