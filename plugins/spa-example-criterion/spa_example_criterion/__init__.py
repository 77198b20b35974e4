"""An example third-party SPA criterion: ``linf``, the largest |w| of a channel's slice.

Install it next to SPA (``pip install plugins/spa-example-criterion``) and it shows
up in ``spa criteria`` and can be used as ``spa prune ... --criterion linf``. Nothing
in SPA names it: it is found through the ``spa`` entry-point group.
"""

from __future__ import annotations

import numpy as np

from spa_core import hookimpl
from spa_core.criteria.base import Criterion, ScoringContext


class LInfinity(Criterion):
    """``score_c = max |w_c|`` over the slice of channel c (weights only)."""

    name = "linf"

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        moved = np.moveaxis(np.abs(weight), axis, 0)
        return moved.reshape(moved.shape[0], -1).max(axis=1)


@hookimpl
def spa_register_criteria() -> list[Criterion]:
    return [LInfinity()]
