"""Group importance: per-parameter channel scores, summed per channel, reduced over members.

For each member ``(initializer, axis)`` of a group, the criterion scores every index
along the axis; indices that belong to one root channel are summed (a flattened
channel spans k indices of the next Gemm). The member vectors are then reduced
(``sum``/``mean``/``max``) and the result normalised so that groups can be ranked
together (``mean``: divide by the mean; ``max``; ``sum``; ``none``; ``params``: divide
each channel's score by the number of parameters removing it removes).

``params`` makes global ranking cost-aware: a channel is ranked by its importance per
parameter, as a knapsack under a parameter budget is solved greedily (HALP, Shen et
al., *Structural Pruning via Latency-Saliency Knapsack*, NeurIPS 2022), and as
unstructured SNIP/GraSP rank single weights. With ``reduce="sum"`` the score is the
mean per-parameter importance of everything the channel carries, so a wide layer's
channel no longer outranks a narrow layer's just because it holds more weights.
"""

from __future__ import annotations

import numpy as np

from .analysis import Analysis, ChannelGroup
from .criteria.base import Criterion, ScoringContext
from .errors import InvalidOptionError

REDUCTIONS = {
    "sum": lambda m: m.sum(axis=0),
    "mean": lambda m: m.mean(axis=0),
    "max": lambda m: m.max(axis=0),
}
# normalisation -> f(reduced scores, parameters per root channel)
NORMALISATIONS = {
    "mean": lambda s, n: s / s.mean() if s.mean() > 0 else s,
    "max": lambda s, n: s / s.max() if s.max() > 0 else s,
    "sum": lambda s, n: s / s.sum() if s.sum() > 0 else s,
    "none": lambda s, n: s,
    "params": lambda s, n: s / np.maximum(n, 1.0),
}


def per_root_channel(analysis: Analysis, group: ChannelGroup, dim: tuple[str, int], per_index: np.ndarray) -> np.ndarray:
    """``per_index`` (one value per index of ``dim``) summed into the group's root channels;
    indices outside the group add nothing (a flattened channel spans several indices)."""
    order = np.argsort(group.classes)
    sorted_classes = group.classes[order]
    labels = analysis.dim_labels(dim)
    pos = np.clip(np.searchsorted(sorted_classes, labels), 0, len(sorted_classes) - 1)
    inside = sorted_classes[pos] == labels
    return np.bincount(order[pos[inside]], weights=per_index[inside], minlength=group.size)


def channel_parameters(analysis: Analysis, group: ChannelGroup) -> np.ndarray:
    """How many parameters removing each root channel of ``group`` removes (running
    statistics are buffers, not parameters, and are not counted)."""
    counts = np.zeros(group.size)
    for dim in group.members:
        name, axis = dim
        if name in analysis.statistics or not analysis.graph.is_parameter(name):
            continue
        shape = analysis.graph.shapes[name]
        per_index = float(np.prod(shape)) / max(int(shape[axis]), 1)
        counts += per_root_channel(analysis, group, dim, np.full(int(shape[axis]), per_index))
    return counts


def group_member_scores(
    analysis: Analysis, group: ChannelGroup, criterion: Criterion, ctx: ScoringContext, cache: dict
) -> np.ndarray:
    """Scores of shape (members, root channels), one row per scored member."""
    rows = []
    for dim in group.members:
        name, axis = dim
        if name in analysis.statistics:
            continue
        key = (name, axis)
        if key not in cache:
            weight = analysis.graph.initializers[name]
            cache[key] = np.asarray(criterion.channel_scores(name, weight, axis, ctx), dtype=np.float64)
        rows.append(per_root_channel(analysis, group, dim, cache[key]))
    if not rows:
        return np.zeros((1, group.size))
    return np.vstack(rows)


def score_groups(
    analysis: Analysis,
    criterion: Criterion,
    ctx: ScoringContext | None = None,
    reduce: str = "mean",
    normalize: str = "mean",
) -> dict[int, np.ndarray]:
    """Normalised importance of every root channel of every group."""
    if reduce not in REDUCTIONS:
        raise InvalidOptionError(f"unknown group reduction '{reduce}'; use one of {', '.join(REDUCTIONS)}")
    if normalize not in NORMALISATIONS:
        raise InvalidOptionError(
            f"unknown normalisation '{normalize}'; use one of {', '.join(NORMALISATIONS)}"
        )
    ctx = ctx or ScoringContext()
    cache: dict = {}
    scores = {}
    for group in analysis.groups:
        members = group_member_scores(analysis, group, criterion, ctx, cache)
        size = channel_parameters(analysis, group) if normalize == "params" else None
        scores[group.id] = NORMALISATIONS[normalize](REDUCTIONS[reduce](members), size)
    return scores
