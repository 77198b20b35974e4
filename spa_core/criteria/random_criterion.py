"""``random``: uniform random scores, the baseline every criterion must beat."""

from __future__ import annotations

import zlib

import numpy as np

from ..plugins import hookimpl
from .base import Criterion, ScoringContext


class Random(Criterion):
    """Scores drawn from U(0, 1), seeded by the engine's seed, the parameter and the axis.

    The draws do not consume the context's shared generator, so scoring twice with the
    same seed gives the same scores (a workflow that measures ratios on one scoring and
    prunes with another — :class:`~spa_core.workflows.PruningSession` — then agrees).
    """

    name = "random"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        entropy = getattr(ctx.rng.bit_generator.seed_seq, "entropy", None)
        seed = [int(e) for e in np.atleast_1d(entropy if entropy is not None else 0)]
        rng = np.random.default_rng([*seed, zlib.crc32(name.encode()), axis])
        return rng.random(weight.shape[axis])


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [Random()]
