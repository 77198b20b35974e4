"""Build the pruned linen model: sliced variables, and the module re-created with new widths.

A linen module's widths live in its dataclass fields (``features: int``,
``widths: tuple[int, ...]``, ``num_heads: int``), turned into parameter shapes by its
``setup``/``__call__`` code. SPA does not read that code; it *measures* it: each integer
field (and each integer in a tuple/list field) is doubled in turn and the module is
initialised abstractly (``jax.eval_shape``), which shows how every parameter dimension
scales with it (``dim ∝ field``, ``∝ 1/field`` for a head size ``qkv // heads``, or not at
all). Solving those log-linear relations for the pruned shapes gives the new field
values, and a final abstract ``init`` checks that the re-created module has exactly the
pruned shapes. When that fails (a width hard-coded in ``__call__``, a width that the
fields cannot reach) the module is not returned and a note says which parameter axis
could not be matched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen

from .linen_model import LinenModel
from .slicing import NativeKept, slice_leaf
from .views import LinenView, path_string

Shapes = dict[str, tuple[int, ...]]
Element = tuple[str, int | None]  # (field name, index in a tuple/list field or None)


def _shapes(module: linen.Module, specs: list[Any], kwargs: dict[str, Any]) -> Shapes | None:
    """Parameter shapes of ``module`` initialised on ``specs``, or ``None`` if init fails."""
    key = jax.random.key(0)
    try:
        tree = jax.eval_shape(
            lambda *xs: module.init({"params": key, "dropout": key}, *xs, **kwargs), *specs
        )
    except Exception:
        return None
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {path_string(p): tuple(leaf.shape) for p, leaf in flat}


def _elements(module: linen.Module) -> Iterator[tuple[Element, int]]:
    """The module's integer width candidates: int fields and ints inside tuple/list fields."""
    for f in dataclasses.fields(module):
        if f.name in ("parent", "name"):
            continue
        value = getattr(module, f.name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            yield (f.name, None), value
        elif isinstance(value, list | tuple) and value and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        ):
            for i, v in enumerate(value):
                yield (f.name, i), v


def _with(module: linen.Module, values: dict[Element, int]) -> linen.Module:
    """``module.clone`` with the given elements replaced."""
    updates: dict[str, Any] = {}
    for (name, index), value in values.items():
        if index is None:
            updates[name] = value
        else:
            current = list(updates.get(name, getattr(module, name)))
            current[index] = value
            updates[name] = type(getattr(module, name))(current)
    return module.clone(**updates)


def _exponents(module: linen.Module, element: Element, value: int, base: Shapes,
               rows: list[tuple[str, int]], specs: list[Any], kwargs: dict[str, Any]) -> np.ndarray | None:
    """How each row's dimension scales when ``element`` doubles (``None``: not a power law)."""
    shapes = _shapes(_with(module, {element: 2 * value}), specs, kwargs)
    if shapes is None or any(len(shapes.get(p, ())) != len(base[p]) for p, _ in rows):
        return None
    column = np.array([math.log2(shapes[p][a] / base[p][a]) for p, a in rows])
    if not np.allclose(column, np.round(column)) or np.abs(column).max(initial=0) > 1:
        return None
    return np.round(column)


def solve_module(module: linen.Module, target: Shapes, specs: list[Any],
                 kwargs: dict[str, Any]) -> tuple[linen.Module | None, list[str]]:
    """Re-create ``module`` so that its parameters have the ``target`` shapes.

    :return: ``(module, [])`` on success, ``(None, notes)`` when it cannot.
    """
    base = _shapes(module, specs, kwargs)
    if base is None or any(p not in base or len(base[p]) != len(s) for p, s in target.items()):
        return None, ["the module's own init does not produce the given variables' structure"]
    rows = [(p, a) for p in sorted(target) for a in range(len(target[p]))]
    wanted = np.array([math.log2(target[p][a] / base[p][a]) for p, a in rows])
    elements, columns = [], []
    for element, value in _elements(module):
        column = _exponents(module, element, value, base, rows, specs, kwargs)
        if column is not None and column.any():
            elements.append((element, value))
            columns.append(column)
    matrix = np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0))
    loose_rows = [(p, a) for (p, a), w, r in zip(rows, wanted, matrix) if w != 0 and not r.any()]
    loose_rows.sort(key=lambda pa: ("kernel" not in pa[0], not pa[0].startswith("params"), pa))
    loose = [f"{p} axis {a} ({base[p][a]} -> {target[p][a]})" for p, a in loose_rows]
    if loose:
        more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
        return None, [
            f"{type(module).__name__} has no integer field that sets these widths (hard-coded in "
            f"its code, or derived by a formula SPA cannot invert): {', '.join(loose[:3])}{more}; "
            "the pruned variables are returned without a module"
        ]
    solution = np.linalg.lstsq(matrix, wanted, rcond=None)[0] if columns else np.zeros(0)
    values = {e: int(round(v * 2.0**x)) for (e, v), x in zip(elements, solution)}
    if any(v < 1 for v in values.values()):
        return None, ["the pruned widths need a non-positive constructor field value"]
    changed = {e: v for (e, old), v in zip(elements, values.values()) if v != old}
    candidate = _with(module, changed) if changed else module
    got = _shapes(candidate, specs, kwargs)
    bad = [p for p, s in target.items() if got is None or got.get(p) != s]
    if bad:
        return None, [
            f"no values of {type(module).__name__}'s integer fields give the pruned shapes "
            f"(e.g. {bad[0]}: wanted {target[bad[0]]}, fields {_describe(changed)} give "
            f"{None if got is None else got.get(bad[0])})"
        ]
    return candidate, []


def _describe(values: dict[Element, int]) -> str:
    return ", ".join(f"{n}{'' if i is None else f'[{i}]'}={v}" for (n, i), v in values.items()) or "unchanged"


def rebuild_linen(model: LinenModel, kept: NativeKept, specs: list[Any]) -> LinenModel:
    """The pruned :class:`LinenModel`: sliced variables and, where possible, a new module."""
    view = LinenView(model)
    leaves = view.leaves()
    sliced = {p: jnp.asarray(slice_leaf(leaves[p], k)) for p, k in kept.items()}
    variables = view.variables_with(sliced)
    if not kept:
        return LinenModel(model.module, variables, dict(model.apply_kwargs), [])
    target = {p: tuple(sliced[p].shape) if p in sliced else tuple(v.shape) for p, v in leaves.items()}
    module, notes = solve_module(model.module, target, specs, dict(model.apply_kwargs))
    return LinenModel(module, variables, dict(model.apply_kwargs), notes)
