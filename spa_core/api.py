"""The Python API: prune an ONNX model, or a native model through its adapter."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import progress
from .analysis import Analysis, analyze
from .criteria.base import Criterion, ScoringContext, get_criterion
from .errors import FrameworkError, HardcodedWidthError, InvalidOptionError, UnprunableModelError
from .gradients.context import native_scoring_context, onnx_scoring_context
from .importance import score_groups
from .io import load_model
from .plan import Plan
from .planner import PlanOptions, build_plan, choose_channels, removed_class_mask
from .prepare import prepare
from .report import Report, build_report
from .surgery import apply_removal, check_model, surgery_view
from .types import ExportedModel

log = logging.getLogger(__name__)


@dataclass
class PruneResult:
    """Everything a pruning produced.

    Attributes:
        onnx: the pruned ONNX model (always present; runs in onnxruntime).
        plan: the portable plan (JSON-serialisable via ``plan.to_json()``).
        report: parameters and MACs before/after, per group.
        model: the pruned native model (``None`` when the input was ONNX).
        analysis: the channel groups and barriers of the original model.
        removed: boolean mask over channel classes (True = removed).
        exported: the export of the native model (``None`` for ONNX input).
    """

    onnx: onnx.ModelProto
    plan: Plan
    report: Report
    analysis: Analysis
    removed: np.ndarray
    model: Any = None
    exported: ExportedModel | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def original_onnx(self) -> onnx.ModelProto:
        """The prepared (shape-folded) original model the plan refers to."""
        return self.analysis.graph.model


def analyze_onnx(
    model: str | Path | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    ignore: Iterable[str] = (),
) -> Analysis:
    """Channel groups and barriers of an ONNX model (nothing is pruned)."""
    return analyze(prepare(load_model(model), input_shapes), ignore=ignore)


def prune_onnx(
    model: str | Path | onnx.ModelProto,
    *,
    ratio: float = 0.5,
    criterion: str | Criterion = "l1",
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    global_ranking: bool = False,
    round_to: int = 1,
    min_keep: int = 1,
    max_ratio: float = 1.0,
    ignore: Iterable[str] = (),
    reduce: str = "mean",
    normalize: str = "mean",
    seed: int = 0,
    scoring: ScoringContext | None = None,
    validate: bool = True,
    analysis: Analysis | None = None,
    data: Any = None,
    loss: Any = None,
) -> PruneResult:
    """Prune an ONNX model (path or ``ModelProto``; the caller's object is not modified).

    ``data`` (calibration batches ``[(inputs, targets), ...]`` or a
    :class:`spa_core.gradients.Calibration`) and ``loss`` (``"cross_entropy"``, ``"mse"``
    or a callable) are read only by data-driven criteria (``taylor``, ``snip``...).
    """
    opts = PlanOptions(ratio, global_ranking, round_to, min_keep, max_ratio)
    opts.validate()
    crit = get_criterion(criterion)
    timings = {}
    t0 = time.perf_counter()
    if analysis is None:
        with progress.step("analyse (shape folding, propagation)"):
            analysis = analyze_onnx(model, input_shapes, ignore)
    timings["analyse"] = time.perf_counter() - t0
    if not analysis.groups:
        raise UnprunableModelError(_unprunable_message(analysis))
    t1 = time.perf_counter()
    ctx = scoring or onnx_scoring_context(crit, analysis, model, data, loss, seed)
    if ctx.analysis is None:
        ctx.analysis = analysis
    with progress.step(f"score ({crit.name})"):
        scores = score_groups(analysis, crit, ctx, reduce, normalize)
    timings["score"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    kept = choose_channels(analysis, scores, opts)
    options = {
        "ratio": ratio,
        "criterion": crit.name,
        "global_ranking": global_ranking,
        "round_to": round_to,
        "min_keep": min_keep,
        "max_ratio": max_ratio,
        "reduce": reduce,
        "normalize": normalize,
        "ignore": sorted(ignore),
        "input_shapes": {k: list(v) for k, v in (input_shapes or {}).items()},
    }
    plan = build_plan(analysis, kept, scores, options)
    removed = removed_class_mask(analysis, kept)
    result = _finish(analysis, removed, plan, kept, validate)
    timings["prune"] = time.perf_counter() - t2
    result.report.timings = timings
    return result


def _finish(analysis: Analysis, removed: np.ndarray, plan: Plan, kept: dict[int, np.ndarray], validate: bool) -> PruneResult:
    with progress.step("surgery"):
        pruned, attributes = apply_removal(analysis, removed)
    plan.attributes = attributes
    if validate:
        with progress.step("validate (checker, shapes, onnxruntime)"):
            check_model(pruned, analysis.graph.model)
    view = surgery_view(analysis, removed)
    report = build_report(analysis, view, {gid: len(k) for gid, k in kept.items()}, removed)
    return PruneResult(onnx=pruned, plan=plan, report=report, analysis=analysis, removed=removed)


def apply_plan_onnx(
    model: str | Path | onnx.ModelProto,
    plan: Plan,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    validate: bool = True,
) -> PruneResult:
    """Re-apply a saved plan to the same unpruned model (reproduces the pruning)."""
    shapes = input_shapes or {k: tuple(v) for k, v in plan.options.get("input_shapes", {}).items()} or None
    analysis = analyze_onnx(model, shapes, plan.options.get("ignore", ()))
    removed = np.zeros(int(analysis.labels.max()) + 1, dtype=bool)
    for name, p in plan.parameters.items():
        if name not in analysis.graph.initializers:
            raise InvalidOptionError(f"the plan prunes '{name}', which this model does not have")
        for axis, keep in p.kept.items():
            labels = analysis.dim_labels((name, axis))
            gone = np.ones(len(labels), dtype=bool)
            gone[keep] = False
            removed[labels[gone]] = True
    kept = {}
    for g in analysis.groups:
        kept[g.id] = np.nonzero(~removed[g.classes])[0]
    fresh = build_plan(analysis, kept, None, plan.options)
    if {k: v.kept for k, v in fresh.parameters.items()} != {k: v.kept for k, v in plan.parameters.items()}:
        raise InvalidOptionError("the plan does not match this model's channel groups (was it made for another model?)")
    return _finish(analysis, removed, fresh, kept, validate)


def barrier_summary(analysis: Analysis, top: int = 3) -> str:
    """Unsupported operators and the ``top`` largest barrier causes, in one line."""
    parts = []
    if analysis.unknown_ops:
        parts.append("unsupported operators: " + ", ".join(f"{k} x{v}" for k, v in analysis.unknown_ops.items()))
    if analysis.blocked_reasons:
        causes = analysis.blocked_reasons.most_common(top)
        parts.append("barriers: " + "; ".join(f"{r} ({n} channels)" for r, n in causes))
    return " | ".join(parts)


def _unprunable_message(analysis: Analysis) -> str:
    summary = barrier_summary(analysis)
    detail = f" - {summary}" if summary else ""
    return f"nothing to prune: every channel is behind a barrier{detail}"


# ---------------------------------------------------------------------------- native
def detect_framework(model: Any) -> str:
    from .plugins import plugin_manager

    name = plugin_manager().hook.spa_detect_framework(model=model)
    if name is None:
        raise FrameworkError(
            f"no installed SPA adapter recognises a {type(model).__module__}.{type(model).__name__}; "
            "pass an ONNX model or install the framework's adapter"
        )
    return name


def prune(
    model: Any,
    example_inputs: Any = None,
    *,
    ratio: float = 0.5,
    criterion: str | Criterion = "l1",
    framework: str | None = None,
    target: str | None = None,
    inplace: bool = False,
    export_options: dict[str, Any] | None = None,
    **prune_options: Any,
) -> PruneResult:
    """Prune a native model (PyTorch, Keras, Flax, MXNet, ONNX) and return the same kind.

    The model is exported to ONNX by its adapter, pruned there, and the plan is applied
    back to the native model (a pruned copy unless ``inplace``). ``target`` names
    another framework to build the pruned model in (through the pruned ONNX).
    """
    from .plugins import plugin_manager

    PlanOptions(ratio).validate()
    hook = plugin_manager().hook
    framework = framework or detect_framework(model)
    options = dict(export_options or {})
    with progress.step(f"export ({framework} -> ONNX)"):
        exported = hook.spa_export(model=model, example_inputs=example_inputs, framework=framework, options=options)
    if exported is None:
        raise FrameworkError(f"no installed SPA adapter exports '{framework}' models")
    if prune_options.get("scoring") is None:  # data-driven criteria: derivatives from the native framework
        prune_options["scoring"] = native_scoring_context(
            get_criterion(criterion), model, exported, prune_options.get("data"), prune_options.get("loss"),
            prune_options.get("seed", 0),
        )
    if target is None or target == exported.framework:
        result = _prune_and_apply(hook, model, exported, ratio, criterion, inplace, prune_options)
    else:
        result = prune_onnx(
            exported.onnx, ratio=ratio, criterion=criterion, input_shapes=exported.input_shapes or None, **prune_options
        )
        result.exported = exported
        result.model = hook.spa_convert_onnx(pruned_onnx=result.onnx, target=target, options={})
        if result.model is None:
            raise FrameworkError(f"no installed SPA adapter builds '{target}' models from ONNX")
    return result


MAX_REPAIRS = 8  # prunings redone without the layers whose forward() hard-codes a pruned width


def _prune_and_apply(hook: Any, model: Any, exported: ExportedModel, ratio: float, criterion: Any,
                     inplace: bool, prune_options: dict[str, Any]) -> PruneResult:
    """Prune the export and apply the plan to the native model.

    When the pruned native model cannot run because a layer's forward() hard-codes a
    width (the adapter raises :class:`HardcodedWidthError` naming that layer's
    parameters and nodes), the pruning is redone with those parameters ignored (then,
    if the same layer fails again, its nodes, which blocks its inputs too), up to
    ``MAX_REPAIRS`` times (not in place: the model must be intact to retry). What was
    left unpruned is listed in ``result.extras["auto_ignored"]``.
    """
    ignore = list(prune_options.pop("ignore", ()))
    auto: list[str] = []
    failure: HardcodedWidthError | None = None
    for attempt in range(MAX_REPAIRS + 1):
        if attempt and prune_options.get("scoring") is not None:
            prune_options["scoring"].analysis = None  # scored again on the new analysis
        if attempt:
            prune_options.pop("analysis", None)
        try:
            result = prune_onnx(exported.onnx, ratio=ratio, criterion=criterion,
                                input_shapes=exported.input_shapes or None, ignore=ignore, **prune_options)
        except UnprunableModelError:
            if failure is None:
                raise
            raise failure from None  # nothing is left once the layers at fault are ignored
        result.exported = exported
        try:
            with progress.step(f"apply the plan to the {exported.framework} model and check it"):
                result.model = hook.spa_apply_plan(
                    model=model, plan=result.plan, exported=exported, pruned_onnx=result.onnx,
                    options={"inplace": inplace},
                )
        except HardcodedWidthError as exc:
            new = [p for p in exc.parameters if p not in ignore] or [n for n in exc.nodes if n not in ignore]
            if inplace or not new or attempt == MAX_REPAIRS:
                raise
            ignore += new
            auto.append(exc.where)
            log.warning("left unpruned because its forward() hard-codes a width: %s", exc.where)
            # kept only for its message: its traceback holds the failed attempt's frames, and
            # with them a pruned copy of the model and its ONNX (gigabytes on large models)
            failure = exc.with_traceback(None)
            failure.__context__ = failure.__cause__ = None
            del result
            continue
        if result.model is None:
            raise FrameworkError(f"no installed SPA adapter applies plans to '{exported.framework}' models")
        if auto:
            result.extras["auto_ignored"] = auto
        return result
    raise AssertionError("unreachable")


def apply_plan(
    model: Any,
    plan: Plan,
    example_inputs: Any = None,
    *,
    framework: str | None = None,
    inplace: bool = False,
    export_options: dict[str, Any] | None = None,
) -> PruneResult:
    """Re-apply a saved plan to a freshly built, unpruned native model.

    Ship a ``state_dict`` and the plan JSON instead of a pickle: build the model,
    ``apply_plan(model, plan, x)``, then ``load_state_dict`` the pruned weights.
    """
    from .plugins import plugin_manager

    hook = plugin_manager().hook
    framework = framework or detect_framework(model)
    exported = hook.spa_export(model=model, example_inputs=example_inputs, framework=framework,
                               options=dict(export_options or {}))
    if exported is None:
        raise FrameworkError(f"no installed SPA adapter exports '{framework}' models")
    result = apply_plan_onnx(exported.onnx, plan, exported.input_shapes or None)
    result.exported = exported
    result.model = hook.spa_apply_plan(model=model, plan=result.plan, exported=exported, pruned_onnx=result.onnx,
                                       options={"inplace": inplace})
    return result
