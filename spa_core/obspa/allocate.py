"""How many channels each group loses: a ratio, or a MACs target reached by bisection.

Every group comes with its channels in removal order (the greedy OBS order, or the
lowest scores first for a group without consumers) and the cumulative *relative* error of
removing the first k (the OBS error over each consumer's output energy, summed over its
consumers).

* ``uniform``: the same fraction ``r`` of every group (as the engine's local ratio);
* ``global``: every group removes channels while its cumulative relative error stays under
  one threshold ``tau``, so that cheap groups lose more and sensitive ones less.

With a MACs target, ``r`` or ``tau`` is found by bisection on the MACs that the
resulting choice removes (counted by :mod:`spa_core.macs` on the shrunk shapes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..analysis import Analysis
from ..errors import InvalidOptionError
from ..macs import count_macs
from ..planner import removed_class_mask
from ..surgery import surgery_view


@dataclass
class GroupOrder:
    """Removal order of one group and what each prefix costs."""

    size: int
    order: np.ndarray
    """Root indices, first removed first (at most ``depth`` of them)."""
    cum_error: np.ndarray | None
    """Cumulative relative error after removing the first k+1 (``None``: no consumers)."""
    max_remove: int


def macs_counter(analysis: Analysis) -> Callable[[dict[int, np.ndarray]], float]:
    """A function from kept root indices to the fraction of MACs removed."""
    graph = analysis.graph
    before, _ = count_macs(graph.model, lambda n: graph.shapes[n])

    def reduction(kept: dict[int, np.ndarray]) -> float:
        view = surgery_view(analysis, removed_class_mask(analysis, kept))
        after, _ = count_macs(graph.model, lambda n: tuple(view.new_size(n, a) for a in range(len(graph.shapes[n]))))
        return 1.0 - after / before if before else 0.0

    return reduction


def _kept(orders: dict[int, GroupOrder], counts: dict[int, int]) -> dict[int, np.ndarray]:
    kept = {}
    for gid, o in orders.items():
        mask = np.ones(o.size, dtype=bool)
        mask[o.order[: counts[gid]]] = False
        kept[gid] = np.nonzero(mask)[0]
    return kept


def _round(o: GroupOrder, n_remove: int, round_to: int) -> int:
    n_remove = max(0, min(n_remove, o.max_remove))
    if round_to > 1 and o.size >= round_to:
        keep = math.ceil((o.size - n_remove) / round_to) * round_to
        n_remove = max(0, o.size - min(o.size, keep))
    return n_remove


def uniform_counts(orders: dict[int, GroupOrder], r: float, round_to: int = 1) -> dict[int, int]:
    return {gid: _round(o, math.floor(r * o.size + 1e-9), round_to) for gid, o in orders.items()}


def global_counts(orders: dict[int, GroupOrder], tau: float, round_to: int = 1) -> dict[int, int]:
    """Channels whose cumulative relative error stays within ``tau`` (groups without consumers
    are left whole)."""
    counts = {}
    for gid, o in orders.items():
        n = 0 if o.cum_error is None else int(np.searchsorted(o.cum_error, tau, side="right"))
        counts[gid] = _round(o, n, round_to)
    return counts


def allocate(
    orders: dict[int, GroupOrder],
    analysis: Analysis,
    *,
    ratio: float | None,
    macs_target: float | None,
    mode: str = "uniform",
    round_to: int = 1,
    iterations: int = 40,
) -> tuple[dict[int, np.ndarray], dict[str, float]]:
    """Kept root indices of every group, and what was chosen (``r`` or ``tau``, MACs removed)."""
    if mode not in ("uniform", "global"):
        raise InvalidOptionError(f"allocation must be 'uniform' or 'global', got {mode!r}")
    if (ratio is None) == (macs_target is None):
        raise InvalidOptionError("give exactly one of ratio and macs_target")
    reduction = macs_counter(analysis)
    total = sum(o.size for o in orders.values())

    if mode == "uniform":
        def counts_of(x: float) -> dict[int, int]:
            return uniform_counts(orders, x, round_to)
        low, high = 0.0, 1.0
    else:
        errors = np.concatenate([o.cum_error for o in orders.values() if o.cum_error is not None and len(o.cum_error)] or [np.zeros(1)])
        positive = errors[errors > 0]
        low = math.log(positive.min()) - 1 if positive.size else -30.0
        high = math.log(errors.max() + 1e-300) + 1 if errors.max() > 0 else 0.0

        def counts_of(x: float) -> dict[int, int]:
            return global_counts(orders, math.exp(x), round_to)

    if mode == "uniform" and ratio is not None:
        counts = counts_of(ratio)
        chosen = ratio
    else:
        def measure(x: float) -> float:
            c = counts_of(x)
            if macs_target is not None:
                return reduction(_kept(orders, c))
            return sum(c.values()) / total

        goal = macs_target if macs_target is not None else ratio
        if measure(high) < goal:
            chosen = high  # the target is out of reach: remove as much as allowed
        else:
            for _ in range(iterations):
                mid = (low + high) / 2
                if measure(mid) >= goal:
                    high = mid
                else:
                    low = mid
            chosen = high
        counts = counts_of(chosen)
    kept = _kept(orders, counts)
    info = {"macs_reduction": reduction(kept), "removed_channels": sum(counts.values()) / max(total, 1)}
    info["ratio" if mode == "uniform" else "log_tau"] = chosen
    return kept, info
