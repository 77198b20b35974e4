"""A model exported, analysed and scored once, that can be pruned at any ratio.

Workflows (a MACs or parameter budget, iterative pruning) try several ratios on one
model. Exporting, analysing and — for data-driven criteria — differentiating are the
expensive parts, so :class:`PruningSession` does them once; :meth:`PruningSession.counts`
then measures a ratio without surgery and :meth:`PruningSession.prune` produces the
pruned ONNX and native model exactly as :func:`spa_core.prune` would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from ..analysis import Analysis
from ..api import PruneResult, analyze_onnx, detect_framework, prune_onnx
from ..criteria.base import Criterion, ScoringContext, get_criterion
from ..errors import FrameworkError, InvalidOptionError
from ..gradients.calibration import Calibration, as_calibration
from ..gradients.context import native_scoring_context, onnx_scoring_context
from ..importance import score_groups
from ..planner import PlanOptions, choose_channels, removed_class_mask
from ..report import build_report
from ..surgery import surgery_view
from ..types import ExportedModel

# plan options a session passes through to prune_onnx (and to the planner)
PLAN_KEYS = ("global_ranking", "round_to", "min_keep", "max_ratio")
SCORE_KEYS = ("reduce", "normalize")


@dataclass(frozen=True)
class Counts:
    """Parameters and multiply-accumulates of the model pruned at ``ratio``."""

    ratio: float
    params: int
    macs: int


def materialise(data: Any, loss: Any) -> Calibration | None:
    """Calibration batches read once (so every step of a workflow sees the same batches)."""
    if data is None:
        return None
    cal = as_calibration(data, loss)
    return replace(cal, data=cal.batches(), max_batches=None)


@dataclass
class PruningSession:
    """One model, exported and analysed, with its channel scores.

    Build it with :meth:`open`. ``options`` are :func:`spa_core.prune_onnx` keywords
    (``global_ranking``, ``round_to``, ``min_keep``, ``max_ratio``, ``reduce``,
    ``normalize``, ``ignore``, ``seed``).
    """

    model: Any
    exported: ExportedModel
    analysis: Analysis
    criterion: Criterion
    scoring: ScoringContext
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        model: Any,
        example_inputs: Any = None,
        *,
        criterion: str | Criterion = "l1",
        data: Any = None,
        loss: Any = None,
        framework: str | None = None,
        export_options: Mapping[str, Any] | None = None,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        ignore: Iterable[str] = (),
        seed: int = 0,
        **options: Any,
    ) -> PruningSession:
        """Export ``model`` through its adapter (ONNX as is), analyse it and score it."""
        from ..plugins import plugin_manager

        unknown = set(options) - set(PLAN_KEYS) - set(SCORE_KEYS)
        if unknown:
            raise InvalidOptionError(f"unknown pruning option(s): {', '.join(sorted(unknown))}")
        crit = get_criterion(criterion)
        framework = framework or detect_framework(model)
        export = dict(export_options or {})
        if input_shapes:
            export.setdefault("input_shapes", dict(input_shapes))
        exported = plugin_manager().hook.spa_export(
            model=model, example_inputs=example_inputs, framework=framework, options=export
        )
        if exported is None:
            raise FrameworkError(f"no installed SPA adapter exports '{framework}' models")
        shapes = exported.input_shapes or (dict(input_shapes) if input_shapes else None)
        analysis = analyze_onnx(exported.onnx, shapes, ignore)
        scoring = native_scoring_context(crit, model, exported, data, loss, seed, analysis)
        if scoring is None:
            scoring = onnx_scoring_context(crit, analysis, exported.onnx, data, loss, seed)
        opts = {**options, "ignore": list(ignore), "seed": seed}
        return cls(model, exported, analysis, crit, scoring, opts)

    # ------------------------------------------------------------------ measuring
    @cached_property
    def scores(self) -> dict[int, np.ndarray]:
        """Normalised channel scores of every group (computed once)."""
        kw = {k: self.options[k] for k in SCORE_KEYS if k in self.options}
        return score_groups(self.analysis, self.criterion, self.scoring, **kw)

    def plan_options(self, ratio: float) -> PlanOptions:
        return PlanOptions(ratio, **{k: self.options[k] for k in PLAN_KEYS if k in self.options})

    def counts(self, ratio: float) -> Counts:
        """Parameters and MACs after pruning at ``ratio`` (no surgery is done)."""
        if ratio <= 0:
            return Counts(0.0, *self.original)
        kept = choose_channels(self.analysis, self.scores, self.plan_options(ratio))
        removed = removed_class_mask(self.analysis, kept)
        report = build_report(self.analysis, surgery_view(self.analysis, removed), {})
        return Counts(ratio, report.params_after, report.macs_after)

    @cached_property
    def original(self) -> tuple[int, int]:
        """Parameters and MACs of the unpruned model."""
        nothing = np.zeros(int(self.analysis.labels.max()) + 1 if self.analysis.labels.size else 0, dtype=bool)
        report = build_report(self.analysis, surgery_view(self.analysis, nothing), {})
        return report.params_before, report.macs_before

    # ------------------------------------------------------------------ pruning
    def prune(self, ratio: float, inplace: bool = False) -> PruneResult:
        """Prune at ``ratio``; ``result.model`` is the native pruned model (ONNX for ONNX)."""
        from ..plugins import plugin_manager

        kw = {k: v for k, v in self.options.items() if k in PLAN_KEYS + SCORE_KEYS + ("ignore", "seed")}
        result = prune_onnx(
            self.exported.onnx, ratio=ratio, criterion=self.criterion, scoring=self.scoring,
            analysis=self.analysis, input_shapes=self.exported.input_shapes or None, **kw,
        )
        result.exported = self.exported
        if self.exported.framework == "onnx":
            result.model = result.onnx
            return result
        result.model = plugin_manager().hook.spa_apply_plan(
            model=self.model, plan=result.plan, exported=self.exported, pruned_onnx=result.onnx,
            options={"inplace": inplace},
        )
        if result.model is None:
            raise FrameworkError(f"no installed SPA adapter applies plans to '{self.exported.framework}' models")
        return result
