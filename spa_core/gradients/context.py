"""Building a criterion's :class:`ScoringContext` from calibration data.

This is the one place that decides what to compute: a data-free criterion gets an
empty context and its ``data`` is never read; a data-driven one gets exactly the
derivatives its ``needs`` name, from the native framework when SPA was handed a native
model (:func:`native_scoring_context`) or from the ONNX graph run in torch
(:func:`onnx_scoring_context`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from onnx import numpy_helper

from ..criteria.base import Criterion, ScoringContext
from ..errors import InvalidOptionError
from ..types import ExportedModel, ParamBinding
from .calibration import Calibration, as_calibration
from .driver import compute_derivatives
from .layout import map_to_onnx
from .providers import get_provider, has_provider

log = logging.getLogger(__name__)


def require_calibration(criterion: Criterion, data: Any, loss: Any) -> Calibration:
    """The calibration of a data-driven criterion; an error naming what to pass when missing."""
    if data is None:
        raise InvalidOptionError(
            f"criterion '{criterion.name}' needs calibration data: pass data=[(inputs, targets), ...] "
            "(and loss=, default 'cross_entropy')"
        )
    return as_calibration(data, loss)


def onnx_scoring_context(
    criterion: Criterion, analysis: Any, model: Any, data: Any = None, loss: Any = None, seed: int = 0
) -> ScoringContext:
    """The context for ``criterion`` on an ONNX model (a ModelProto or a path)."""
    ctx = ScoringContext(rng=np.random.default_rng(seed), analysis=analysis)
    if not criterion.needs_data:
        return ctx
    calibration = require_calibration(criterion, data, loss)
    fn = get_provider("onnx")(model, None, calibration.loss)
    names = analysis.graph.initializers if analysis is not None else None
    identity = {n: ParamBinding(n, tuple(range(np.ndim(v)))) for n, v in fn.parameter_values().items()
                if names is None or n in names}
    shapes = {n: tuple(np.shape(v)) for n, v in fn.parameter_values().items()}
    return _fill(ctx, criterion, fn, calibration, identity, shapes)


def native_scoring_context(
    criterion: Criterion, model: Any, exported: ExportedModel, data: Any = None, loss: Any = None,
    seed: int = 0, analysis: Any = None,
) -> ScoringContext | None:
    """The context for ``criterion`` on a native model, or ``None`` to let the ONNX path do it.

    ``None`` when the criterion is data-free (nothing to compute) or the framework has no
    gradient provider (then :func:`spa_core.prune_onnx` differentiates the export).
    """
    if not criterion.needs_data or not has_provider(exported.framework) or exported.framework == "onnx":
        return None
    calibration = require_calibration(criterion, data, loss)
    fn = get_provider(exported.framework)(model, exported, calibration.loss)
    shapes = {t.name: tuple(t.dims) for t in exported.onnx.graph.initializer}
    aliases = getattr(fn, "aliases", {})
    bindings = {
        name: ParamBinding(aliases.get(b.native_name, b.native_name), b.axes, b.transform)
        for name, b in exported.parameter_map.items()
    }
    ctx = ScoringContext(rng=np.random.default_rng(seed), analysis=analysis)
    _fill(ctx, criterion, fn, calibration, bindings, shapes)
    ctx.weights = _differing_weights(map_to_onnx(fn.parameter_values(), bindings, shapes), exported)
    return ctx


def _fill(ctx: ScoringContext, criterion: Criterion, fn: Any, calibration: Calibration,
          bindings: dict[str, ParamBinding], shapes: dict[str, tuple[int, ...]]) -> ScoringContext:
    batches = calibration.batches()
    if calibration.batch_statistics:
        switch = getattr(fn, "use_batch_statistics", None)
        if switch is None:
            warnings.warn(f"{type(fn).__name__} cannot normalise BatchNorms by batch statistics; "
                          "the scores use the model as it runs", stacklevel=3)
        else:
            switch()
        ctx.extras["batch_statistics"] = switch is not None
    d = compute_derivatives(fn, criterion.needs, batches, ctx.rng, calibration.hessian_samples)
    ctx.gradients = map_to_onnx(d.gradients, bindings, shapes)
    ctx.gradient_batches = [map_to_onnx(g, bindings, shapes) for g in d.gradient_batches]
    ctx.hvp = map_to_onnx(d.hvp, bindings, shapes)
    ctx.hessian_diagonal = map_to_onnx(d.hessian_diagonal, bindings, shapes)
    ctx.extras["calibration_batches"] = len(batches)
    ctx.extras["calibration_examples"] = sum(b.size for b in batches)
    if d.gradients and not ctx.gradients:
        raise InvalidOptionError("no gradient could be matched to an ONNX initializer (is the export's parameter_map empty?)")
    return ctx


def _differing_weights(native: dict[str, np.ndarray], exported: ExportedModel) -> dict[str, np.ndarray]:
    """Native values (ONNX layout) of the initializers the exporter changed (folded BatchNorm)."""
    out = {}
    for init in exported.onnx.graph.initializer:
        value = native.get(init.name)
        if value is not None and not np.allclose(value, numpy_helper.to_array(init), rtol=1e-5, atol=1e-7):
            out[init.name] = value
    return out
