"""Second-order data-driven criteria: ``hessian`` (OBD), ``grasp`` and ``crop``.

* ``hessian`` — LeCun, Denker & Solla, *Optimal Brain Damage*, NeurIPS 1989. At a
  minimum, deleting weight i costs ``s_i = ½ h_ii θ_i²`` (``h_ii`` the Hessian
  diagonal, here Hutchinson's estimate ``E_z[z ⊙ Hz]`` with Rademacher ``z``; Yao et al.,
  *PyHessian*, 2020). ``score_c = Σ_slice ½ |h_ii| θ_i²`` (absolute value: a noisy or
  non-convex estimate must not make a weight look free to remove).
* ``grasp`` — Wang, Zhang & Grosse, *Picking Winning Tickets Before Training by
  Preserving Gradient Flow*, ICLR 2020. ``S(-θ) = -θ ⊙ Hg`` approximates the change of
  the gradient norm when a weight is removed; GraSP removes the weights with the
  *largest* S, so the importance kept here is ``Σ_slice θ ⊙ Hg`` (signed). Scores must be
  non-negative for the engine's normalisation, so each parameter's channel scores are
  shifted by their minimum (ranking and sum/mean group reductions are unchanged).
* ``crop`` — Rachwan et al., *Winning the Lottery Ahead of Time: Efficient Early Network
  Pruning* (CroP), ICML 2022. Gradient-flow preservation in absolute value:
  ``score_c = Σ_slice |θ ⊙ Hg|``.

``Hg`` is the Hessian of the calibration loss times its gradient ``g``, both averaged
over the calibration batches.
"""

from __future__ import annotations

import numpy as np

from ..plugins import hookimpl
from .base import (
    HESSIAN_DIAGONAL,
    HESSIAN_VECTOR,
    WEIGHTS,
    Criterion,
    ScoringContext,
    reduce_other_axes,
)
from .derivatives import derivative, parameter


class Hessian(Criterion):
    """Optimal Brain Damage: ``score_c = Σ_slice ½ |h_ii| θ_i²`` (LeCun et al. 1989)."""

    name = "hessian"
    needs = frozenset({WEIGHTS, HESSIAN_DIAGONAL})

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        w = parameter(ctx, name, weight)
        h = derivative(ctx, "hessian_diagonal", name, weight, self.name)
        return reduce_other_axes(0.5 * np.abs(h) * w * w, axis)


class GraSP(Criterion):
    """Gradient-signal preservation: keep high ``Σ_slice θ ⊙ Hg`` (Wang et al., ICLR 2020)."""

    name = "grasp"
    needs = frozenset({WEIGHTS, HESSIAN_VECTOR})

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        w = parameter(ctx, name, weight)
        hg = derivative(ctx, "hvp", name, weight, self.name)
        signed = reduce_other_axes(w * hg, axis)
        return signed - signed.min() if signed.size else signed


class CroP(Criterion):
    """Gradient-flow preservation: ``score_c = Σ_slice |θ ⊙ Hg|`` (Rachwan et al., ICML 2022)."""

    name = "crop"
    needs = frozenset({WEIGHTS, HESSIAN_VECTOR})

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        w = parameter(ctx, name, weight)
        hg = derivative(ctx, "hvp", name, weight, self.name)
        return reduce_other_axes(np.abs(w * hg), axis)


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [Hessian(), GraSP(), CroP()]
