"""First-order data-driven criteria: ``taylor`` (after training) and ``snip`` (at initialisation).

Both pair each weight with the gradient of the loss ``g = dL/dθ`` from calibration
batches; they differ in where the absolute value goes:

* ``taylor`` — Molchanov et al., *Pruning Convolutional Neural Networks for Resource
  Efficient Inference*, ICLR 2017, and *Importance Estimation for Neural Network
  Pruning*, CVPR 2019. Removing the slice ``w_c`` of channel c changes the loss by
  ``ΔL ≈ -g_c · w_c`` (first-order Taylor expansion), so ``score_c = |Σ_i w_i g_i|`` over
  the slice. At a trained minimum the *mean* gradient vanishes, so the score is
  averaged over calibration batches: ``score_c = mean_b |w_c · g_c^(b)|``.
* ``snip`` — Lee et al., *SNIP: Single-shot Network Pruning based on Connection
  Sensitivity*, ICLR 2019. Connection sensitivity ``|θ ⊙ g|`` per weight, summed over
  the slice: ``score_c = Σ_i |θ_i g_i|`` with ``g`` the gradient over all batches.
"""

from __future__ import annotations

import numpy as np

from ..plugins import hookimpl
from .base import GRADIENT_BATCHES, GRADIENTS, WEIGHTS, Criterion, ScoringContext, reduce_other_axes
from .derivatives import derivative, parameter


class Taylor(Criterion):
    """First-order Taylor: ``score_c = mean_b |Σ_slice w·g_b|`` (Molchanov et al. 2017/2019)."""

    name = "taylor"
    needs = frozenset({WEIGHTS, GRADIENTS, GRADIENT_BATCHES})

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        w = parameter(ctx, name, weight)
        batches = [b for b in ctx.gradient_batches if name in b] or None
        if batches is None:
            g = derivative(ctx, "gradients", name, weight, self.name)
            return np.abs(reduce_other_axes(w * g, axis))
        per_batch = [np.abs(reduce_other_axes(w * np.asarray(b[name], np.float64), axis)) for b in batches]
        return np.mean(per_batch, axis=0)


class Snip(Criterion):
    """Connection sensitivity: ``score_c = Σ_slice |θ ⊙ g|`` (Lee et al., ICLR 2019)."""

    name = "snip"
    needs = frozenset({WEIGHTS, GRADIENTS})

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        w = parameter(ctx, name, weight)
        g = derivative(ctx, "gradients", name, weight, self.name)
        return reduce_other_axes(np.abs(w * g), axis)


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [Taylor(), Snip()]
