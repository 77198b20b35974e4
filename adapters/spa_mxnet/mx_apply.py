"""Apply kept-index slices to MXNet parameters and rewrite the symbol (MXNet's environment).

The main environment translates a plan (``parameters[onnx initializer].kept[onnx axis]``)
into native slices (``{param name: {native axis: kept indices}}``) and sends them here
with the group counts read from the pruned ONNX. This module slices the parameters,
rewrites the symbol's width attributes (:mod:`spa_mxnet.symbol_rules`), checks the result
with MXNet's shape inference, and writes ``PREFIX-symbol.json``/``PREFIX-0000.params``
atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np

from .model import PARAMS_SUFFIX, SYMBOL_SUFFIX
from .mx_common import WorkerError, atomic_write, bare, input_shapes, load_params, load_symbol
from .symbol_rules import SymbolRewriteError, rewrite_symbol


def _slice(name: str, array: np.ndarray, kept_by_axis: dict[str, list[int]]) -> np.ndarray:
    for axis_text, kept in sorted(kept_by_axis.items(), key=lambda kv: int(kv[0])):
        axis = int(axis_text)
        if axis >= array.ndim:
            raise WorkerError(f"plan slices axis {axis} of {name}, which has shape {array.shape}", "model")
        index = np.asarray(kept, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= array.shape[axis]):
            raise WorkerError(
                f"plan keeps index {int(index.max())} of axis {axis} of {name}, "
                f"which has only {array.shape[axis]} entries",
                "model",
            )
        array = np.take(array, index, axis=axis)
    return np.ascontiguousarray(array)


def _check_shapes(sym: mx.sym.Symbol, shapes: dict[str, list[int]], params: dict[str, np.ndarray]) -> None:
    """The pruned symbol must infer exactly the pruned parameters' shapes."""
    try:
        arg_shapes, _, aux_shapes = sym.infer_shape(**{k: tuple(v) for k, v in shapes.items()})
    except mx.base.MXNetError as exc:
        line = str(exc).strip().splitlines()[0]
        raise WorkerError(f"the pruned MXNet symbol does not bind: {line}") from None
    inferred = dict(zip(sym.list_arguments(), arg_shapes))
    inferred.update(zip(sym.list_auxiliary_states(), aux_shapes))
    for name, array in params.items():
        want = inferred.get(name)
        if want is not None and tuple(want) != array.shape:
            raise WorkerError(
                f"the pruned symbol expects {name} of shape {tuple(want)} but the pruned "
                f"parameter has {array.shape}; its operator has a width attribute SPA does not rewrite"
            )


def apply(job: dict[str, Any]) -> dict[str, Any]:
    """Job keys: ``symbol``, ``params``, ``out_prefix``, ``slices``, ``groups``, ``input_shapes``."""
    sym = load_symbol(job["symbol"])
    raw = load_params(job["params"])
    shapes = input_shapes(sym, raw, job.get("input_shapes"))
    by_name = {bare(k): k for k in raw}
    unknown = [n for n in job["slices"] if n not in by_name]
    if unknown:
        raise WorkerError(f"the plan prunes {unknown[0]!r}, which is not a parameter of {job['params']}", "model")

    old = {bare(k): v.asnumpy() for k, v in raw.items()}
    new = {n: _slice(n, old[n], kept) for n, kept in job["slices"].items()}
    graph = json.loads(sym.tojson())
    try:
        changes = rewrite_symbol(
            graph,
            {n: a.shape for n, a in old.items()},
            {n: a.shape for n, a in new.items()},
            {k: int(v) for k, v in job.get("groups", {}).items()},
        )
    except SymbolRewriteError as exc:
        raise WorkerError(str(exc)) from None
    text = json.dumps(graph, indent=2)
    pruned_sym = mx.sym.load_json(text)
    pruned = {**old, **new}
    _check_shapes(pruned_sym, shapes, pruned)

    prefix = job["out_prefix"]
    out = {key: mx.nd.array(pruned[bare(key)], dtype=pruned[bare(key)].dtype) for key in raw}
    atomic_write(prefix + PARAMS_SUFFIX, lambda tmp: mx.nd.save(tmp, out))
    atomic_write(prefix + SYMBOL_SUFFIX, lambda tmp: Path(tmp).write_text(text))
    return {
        "symbol": prefix + SYMBOL_SUFFIX,
        "params": prefix + PARAMS_SUFFIX,
        "changes": changes,
        "param_count_before": int(sum(a.size for a in old.values())),
        "param_count_after": int(sum(a.size for a in pruned.values())),
    }
