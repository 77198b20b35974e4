"""Pruning at any time: workflows around the engine.

* :func:`prune_at_init` — score an untrained network (SNIP, GraSP, CroP), prune, train later;
* :func:`prune_then_finetune` — prune a trained model, then fine-tune (built-in loops for
  torch, Keras and Flax in :mod:`.finetune`, or your own callable);
* :func:`iterative_prune` — N steps toward the target, re-scoring each time;
* :func:`prune_to_target` — one shot to a ratio, a MACs budget or a parameter budget;
* :class:`PruningSession` — export, analyse and score once, then measure or prune at any ratio;
* :mod:`.cli` — the options and runner for ``spa prune``.
"""

from .at_init import prune_at_init
from .finetune import TrainConfig, finetune
from .iterative import WorkflowResult, iterative_prune, prune_then_finetune, prune_to_target
from .session import Counts, PruningSession
from .targets import Target, as_target, solve_ratio

__all__ = [
    "Counts",
    "PruningSession",
    "Target",
    "TrainConfig",
    "WorkflowResult",
    "as_target",
    "finetune",
    "iterative_prune",
    "prune_at_init",
    "prune_then_finetune",
    "prune_to_target",
    "solve_ratio",
]
