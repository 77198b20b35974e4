"""``random``: uniform random scores, the baseline every criterion must beat."""

from __future__ import annotations

import numpy as np

from ..plugins import hookimpl
from .base import Criterion, ScoringContext


class Random(Criterion):
    """Scores drawn from U(0, 1) with the engine's seeded generator."""

    name = "random"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        return ctx.rng.random(weight.shape[axis])


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [Random()]
