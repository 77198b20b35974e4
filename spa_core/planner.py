"""Choosing channels: from group scores to a :class:`~spa_core.plan.Plan`.

* local (default): ``ratio`` of the channels of **each** group is removed;
* global: all groups' normalised scores are ranked together and the lowest
  ``ratio`` of all channels removed, subject to the same per-group bounds.

Per-group bounds: at least ``min_keep`` channels survive, at most ``max_ratio`` of a
group is removed, and the kept count is rounded up to a multiple of ``round_to``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .analysis import Analysis
from .errors import InvalidOptionError
from .plan import GroupPlan, ParameterPlan, Plan


@dataclass(frozen=True)
class PlanOptions:
    ratio: float = 0.5
    global_ranking: bool = False
    round_to: int = 1
    min_keep: int = 1
    max_ratio: float = 1.0

    def validate(self) -> None:
        if not (isinstance(self.ratio, int | float) and 0.0 <= self.ratio < 1.0):
            raise InvalidOptionError(f"ratio must be in [0, 1), got {self.ratio!r}")
        if not 0.0 <= self.max_ratio <= 1.0:
            raise InvalidOptionError(f"max ratio must be in [0, 1], got {self.max_ratio!r}")
        if self.round_to < 1:
            raise InvalidOptionError(f"round_to must be >= 1, got {self.round_to!r}")
        if self.min_keep < 1:
            raise InvalidOptionError(f"min_keep must be >= 1, got {self.min_keep!r}")


def _bounds(n: int, opts: PlanOptions) -> tuple[int, int]:
    """Smallest kept count allowed in a group of n, and the rounding step."""
    floor_keep = max(opts.min_keep, n - math.floor(opts.max_ratio * n + 1e-9))
    return min(n, floor_keep), opts.round_to


def _rounded_keep(n: int, keep: int, opts: PlanOptions) -> int:
    low, step = _bounds(n, opts)
    keep = max(keep, low)
    if step > 1 and n >= step:
        keep = min(n, math.ceil(keep / step) * step)
    return min(n, keep)


def choose_channels(analysis: Analysis, scores: dict[int, np.ndarray], opts: PlanOptions) -> dict[int, np.ndarray]:
    """Kept root indices of every group (sorted)."""
    opts.validate()
    keep_count: dict[int, int] = {}
    if not opts.global_ranking:
        for g in analysis.groups:
            keep_count[g.id] = _rounded_keep(g.size, g.size - math.floor(opts.ratio * g.size + 1e-9), opts)
    else:
        total = sum(g.size for g in analysis.groups)
        budget = math.floor(opts.ratio * total + 1e-9)
        entries = sorted(
            ((float(s), g.id, i) for g in analysis.groups for i, s in enumerate(scores[g.id])),
            key=lambda e: (e[0], e[1], e[2]),
        )
        removable = {g.id: g.size - _bounds(g.size, opts)[0] for g in analysis.groups}
        removed = dict.fromkeys(removable, 0)
        for _, gid, _ in entries:
            if budget <= 0:
                break
            if removed[gid] < removable[gid]:
                removed[gid] += 1
                budget -= 1
        for g in analysis.groups:
            keep_count[g.id] = _rounded_keep(g.size, g.size - removed[g.id], opts)
    kept = {}
    for g in analysis.groups:
        order = np.argsort(scores[g.id], kind="stable")  # lowest first
        n_remove = g.size - keep_count[g.id]
        kept[g.id] = np.sort(order[n_remove:])
    return kept


def removed_class_mask(analysis: Analysis, kept: dict[int, np.ndarray]) -> np.ndarray:
    """Boolean mask over classes: True where the class is removed."""
    removed = np.zeros(int(analysis.labels.max()) + 1 if analysis.labels.size else 0, dtype=bool)
    for g in analysis.groups:
        mask = np.ones(g.size, dtype=bool)
        mask[kept[g.id]] = False
        removed[g.classes[mask]] = True
    return removed


def build_plan(
    analysis: Analysis,
    kept: dict[int, np.ndarray],
    scores: dict[int, np.ndarray] | None = None,
    options: dict | None = None,
) -> Plan:
    """The JSON-serialisable plan of a choice of channels."""
    removed = removed_class_mask(analysis, kept)
    plan = Plan(options=dict(options or {}))
    for g in analysis.groups:
        plan.groups.append(
            GroupPlan(
                id=g.id,
                size=g.size,
                kept=[int(i) for i in kept[g.id]],
                members=[f"{name}:{axis}" for name, axis in g.members],
                scores=[round(float(s), 6) for s in scores[g.id]] if scores else None,
            )
        )
    for name in analysis.graph.initializers:
        if not analysis.graph.is_parameter(name):
            continue
        shape = analysis.graph.shapes[name]
        kept_axes = {}
        for axis in range(len(shape)):
            if (name, axis) not in analysis.dim_start:
                continue
            labels = analysis.dim_labels((name, axis))
            gone = removed[labels]
            if gone.any():
                kept_axes[axis] = np.nonzero(~gone)[0].tolist()
        if kept_axes:
            plan.parameters[name] = ParameterPlan(shape=list(shape), kept=kept_axes)
    return plan
