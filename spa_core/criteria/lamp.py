"""``lamp``: Layer-Adaptive Magnitude-based Pruning, structured.

Lee, Park, Mo & Shin, *Layer-adaptive Sparsity for the Magnitude-based Pruning*, ICLR
2021. With the weights of a layer sorted by magnitude, ``|w_1| <= ... <= |w_n|``, the
LAMP score of the u-th is ``w_u² / Σ_{v >= u} w_v²``: a weight's share of the energy of
itself and everything larger. Scores lie in (0, 1] and the largest entry of every layer
scores 1, so a *global* ranking (``global_ranking=True``) gives each layer a sparsity
that bounds the model's output distortion. Structured here: the unit is the channel
slice, with ``n_c = Σ_slice w²`` in place of ``w²``. Weights only: data-free.
"""

from __future__ import annotations

import numpy as np

from ..plugins import hookimpl
from .base import Criterion, ScoringContext, reduce_other_axes


def lamp_scores(energy: np.ndarray) -> np.ndarray:
    """``n_u / Σ_{v: rank(v) >= rank(u)} n_v`` for a vector of slice energies ``n``."""
    order = np.argsort(energy, kind="stable")
    sorted_energy = energy[order]
    tail = np.cumsum(sorted_energy[::-1])[::-1]  # Σ of this and every larger entry
    scores = np.zeros_like(energy, dtype=np.float64)
    scores[order] = np.divide(sorted_energy, tail, out=np.zeros_like(tail), where=tail > 0)
    return scores


class Lamp(Criterion):
    """``score_c = n_c / Σ_{n_d >= n_c} n_d`` with ``n_c = Σ_slice w²`` (Lee et al., ICLR 2021)."""

    name = "lamp"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        return lamp_scores(reduce_other_axes(np.square(weight.astype(np.float64)), axis))


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [Lamp()]
