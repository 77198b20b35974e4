"""Pruning toward a target: in one shot or in N steps, with optional fine-tuning.

Iterative pruning (Han et al., *Learning both Weights and Connections*, NeurIPS 2015;
Molchanov et al. 2017) removes a little, lets the network recover, re-scores and
repeats. Here each step is a :class:`~spa_core.workflows.session.PruningSession` on the
current model (so data-driven scores are recomputed on the pruned network), and the
steps follow a geometric schedule of the target's measure: step k of N aims at
``M_0 · (M_N / M_0)^(k/N)`` parameters (or MACs), ``M_N`` being the final budget. A
``ratio`` target is turned into the parameter count that one-shot pruning at that ratio
reaches on the original model, so N steps end at the size one shot would give.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..api import PruneResult
from ..errors import InvalidOptionError
from .session import PruningSession, materialise
from .targets import Target, as_target, solve_ratio

Finetune = Callable[[Any, int], Any]
"""A recovery step between pruning steps: ``finetune(model, step) -> model`` (step >= 1)."""


@dataclass
class StepRecord:
    """What one pruning step did (the ratio is relative to that step's input model)."""

    step: int
    ratio: float
    params: int
    macs: int


@dataclass
class WorkflowResult:
    """The last step's :class:`PruneResult` (``result.model`` is the final model) and the history."""

    result: PruneResult
    steps: list[StepRecord] = field(default_factory=list)
    params_before: int = 0
    macs_before: int = 0

    @property
    def model(self) -> Any:
        return self.result.model


def prune_to_target(
    model: Any, example_inputs: Any = None, *, target: Target | float | str = 0.5, criterion: Any = "l1",
    data: Any = None, loss: Any = None, **options: Any,
) -> PruneResult:
    """Prune once to a ratio, a MACs budget or a parameter budget (see :mod:`.targets`)."""
    session = PruningSession.open(model, example_inputs, criterion=criterion, data=data, loss=loss, **options)
    return session.prune(solve_ratio(session, as_target(target)))


def iterative_prune(
    model: Any, example_inputs: Any = None, *, target: Target | float | str = 0.5, steps: int = 3,
    criterion: Any = "l1", data: Any = None, loss: Any = None, finetune: Finetune | None = None,
    **options: Any,
) -> WorkflowResult:
    """Prune in ``steps`` steps toward ``target``, calling ``finetune(model, step)`` after each.

    ``data`` (calibration batches) is read once and reused by every step. ``options``
    are :meth:`PruningSession.open` keywords (``global_ranking``, ``round_to``,
    ``framework``, ``input_shapes``...).
    """
    if steps < 1:
        raise InvalidOptionError(f"steps must be >= 1, got {steps}")
    target = as_target(target)
    calibration = materialise(data, loss)
    session = PruningSession.open(model, example_inputs, criterion=criterion, data=calibration, **options)
    params0, macs0 = session.original
    kind, final = _final_budget(session, target)
    start = params0 if kind == "params" else macs0
    history: list[StepRecord] = []
    result: PruneResult | None = None
    for k in range(1, steps + 1):
        if k > 1:
            session = PruningSession.open(model, example_inputs, criterion=criterion, data=calibration, **options)
        budget = final if k == steps else start * (final / start) ** (k / steps)
        ratio = solve_ratio(session, Target(kind, max(budget, 1.0)))
        result = session.prune(ratio)
        history.append(StepRecord(k, ratio, result.report.params_after, result.report.macs_after))
        model = result.model
        if finetune is not None:
            model = finetune(model, k)
            result.model = model
    assert result is not None
    if steps > 1:  # the last step's report starts from the previous step's model: make it overall
        result.report = replace(result.report, params_before=params0, macs_before=macs0)
    return WorkflowResult(result, history, params0, macs0)


def prune_then_finetune(
    model: Any, example_inputs: Any = None, *, target: Target | float | str = 0.5, train_data: Any,
    epochs: int = 1, lr: float = 1e-3, steps: int = 1, criterion: Any = "l1", data: Any = None,
    loss: Any = None, finetune: Finetune | None = None, **options: Any,
) -> WorkflowResult:
    """Prune a trained model (in ``steps`` steps) and fine-tune after each step.

    Without ``finetune``, the built-in loop (:func:`spa_core.workflows.finetune.finetune`)
    trains ``epochs`` epochs of Adam at ``lr`` on ``train_data`` with ``loss``.
    """
    if finetune is None:
        from .finetune import finetune as builtin

        train_loss = "cross_entropy" if loss is None else loss

        def finetune(m: Any, step: int) -> Any:
            return builtin(m, train_data, epochs=epochs, lr=lr, loss=train_loss)

    return iterative_prune(model, example_inputs, target=target, steps=steps, criterion=criterion,
                           data=data, loss=loss, finetune=finetune, **options)


def _final_budget(session: PruningSession, target: Target) -> tuple[str, float]:
    """The final budget as (measure, absolute count); a ratio becomes one-shot's parameter count."""
    if target.kind == "ratio":
        return "params", float(session.counts(target.value).params)
    original = session.original[0 if target.kind == "params" else 1]
    return target.kind, target.budget(original)
