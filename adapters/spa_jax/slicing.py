"""Translate a plan's kept ONNX indices into kept indices of native pytree leaves.

Each bound initializer knows, element by element, which leaf element it holds
(:class:`spa_jax.probe.LeafMap`). The elements a plan keeps of an initializer are the
cartesian product of its kept indices per ONNX axis; mapped to the leaf they must again
be a cartesian product, now per native axis (a merged ``H*D`` axis kept as whole heads or
as the same head dims in every head is one). Every initializer bound to the same leaf
(a tied embedding used twice) must keep the same elements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spa_core.errors import FrameworkError
from spa_core.plan import Plan
from spa_core.types import ExportedModel

from .probe import LeafMap

NativeKept = dict[str, dict[int, list[int]]]  # leaf path -> native axis -> kept indices


def _leaf_kept(name: str, leaf_map: LeafMap, kept: dict[int, list[int]]) -> dict[int, list[int]]:
    """Kept indices per native axis of one leaf, from one initializer's kept indices."""
    index = [
        np.asarray(kept.get(axis, range(size)), dtype=np.int64)
        for axis, size in enumerate(leaf_map.positions.shape)
    ]
    sub = leaf_map.positions[np.ix_(*index)].reshape(-1) if index else leaf_map.positions.reshape(-1)
    coords = np.unravel_index(sub, leaf_map.leaf_shape) if leaf_map.leaf_shape else ()
    per_axis = {j: np.unique(c) for j, c in enumerate(coords)}
    if int(np.prod([len(v) for v in per_axis.values()], dtype=np.int64)) != sub.size:
        raise FrameworkError(
            f"the plan keeps a set of elements of {leaf_map.path} (through ONNX initializer "
            f"{name}) that is not a sub-block of it, so the Flax parameter cannot be sliced"
        )
    return {j: v.tolist() for j, v in per_axis.items()}


def native_kept(plan: Plan, exported: ExportedModel) -> NativeKept:
    """Kept indices per native axis of every leaf the plan prunes.

    :raises FrameworkError: when the plan prunes an initializer jax2onnx computed from
        parameters (no single leaf to slice), or prunes one leaf differently through two
        initializers.
    """
    leaf_maps: dict[str, LeafMap] = exported.extras["leaf_maps"]
    derived = set(exported.extras.get("derived", []))
    for name, pplan in plan.parameters.items():
        if name in derived and pplan.kept:
            raise FrameworkError(
                f"the plan prunes ONNX initializer {name}, which jax2onnx computed from "
                "several Flax parameters; it cannot be mapped back to one parameter"
            )
    by_leaf: dict[str, list[tuple[str, dict[int, list[int]]]]] = {}
    for name, leaf_map in leaf_maps.items():
        pplan = plan.parameters.get(name)
        kept = {int(a): list(k) for a, k in pplan.kept.items()} if pplan is not None else {}
        by_leaf.setdefault(leaf_map.path, []).append((name, _leaf_kept(name, leaf_map, kept)))
    result: NativeKept = {}
    for path, entries in by_leaf.items():
        first_name, first = entries[0]
        for name, other in entries[1:]:
            if other != first:
                raise FrameworkError(
                    f"parameter {path} is used by ONNX initializers {first_name} and {name}, "
                    "and the plan keeps different channels of them"
                )
        shape = leaf_maps[first_name].leaf_shape
        pruned = {j: k for j, k in first.items() if len(k) < shape[j]}
        if pruned:
            result[path] = pruned
    return result


def slice_leaf(value: Any, kept: dict[int, list[int]]) -> np.ndarray:
    """``value`` with only the kept indices along each pruned axis."""
    arr = np.asarray(value)
    for axis, idx in sorted(kept.items()):
        arr = np.take(arr, np.asarray(idx, dtype=np.int64), axis=axis)
    return arr
