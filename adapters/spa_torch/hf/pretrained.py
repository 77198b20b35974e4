"""Saving and loading pruned ``transformers`` models.

When the config describes the pruned weights (:class:`~spa_torch.hf.config.ConfigFit`
with no overrides), a pruned model is an ordinary ``transformers`` model:
``save_pretrained`` / ``from_pretrained`` need nothing from SPA.

Otherwise (fewer heads of a derived width, uneven layers) the config keeps the shapes it
cannot express in ``config.spa_pruning["shapes"]`` (and RMSNorm epsilons it cannot
express in ``["epsilons"]``) and :func:`load_pruned` rebuilds the model: a subclass of
the model class (same name) resizes those parameters right after ``__init__``, before
``transformers`` loads the checkpoint, so its own loader (key renaming, tied weights,
shards, dtypes) does the rest. Plain ``from_pretrained`` on a checkpoint with other
shapes refuses with a size-mismatch error; it never loads wrong shapes. (One whose only
override is an epsilon loads, with that epsilon wrong: use :func:`load_pruned`.)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch.nn as nn

from spa_core.errors import FrameworkError
from spa_core.plan import ParameterPlan, Plan
from spa_core.types import ExportedModel, ParamBinding

from ..apply import apply_plan_to_module
from ..torchvision_compat import ensure_torchvision
from .config import OVERRIDES_KEY
from .modules import register_updaters

PLAN_FILE = "spa_plan.json"


def resize_parameters(model: nn.Module, shapes: dict[str, list[int]]) -> None:
    """Give ``model``'s parameters ``shapes`` (values: the leading slices) and fix attributes.

    Works on the ``meta`` device. Module attributes (head counts, ``in_features``...)
    follow through the same updaters as pruning.
    """
    register_updaters(model)
    current = model.state_dict(keep_vars=True)
    plan = Plan()
    bindings = {}
    for name, shape in shapes.items():
        if name not in current:
            raise FrameworkError(f"config.{OVERRIDES_KEY} names '{name}', which {type(model).__name__} does not have")
        old = list(current[name].shape)
        if len(old) != len(shape) or any(n > o for n, o in zip(shape, old)):
            raise FrameworkError(f"cannot resize '{name}' from {old} to {list(shape)}")
        kept = {a: list(range(n)) for a, (n, o) in enumerate(zip(shape, old)) if n != o}
        if kept:
            plan.parameters[name] = ParameterPlan(shape=old, kept=kept)
            bindings[name] = ParamBinding(name, tuple(range(len(old))))
    exported = ExportedModel(onnx=None, framework="torch", parameter_map=bindings)
    apply_plan_to_module(model, plan, exported, inplace=True)


@functools.cache
def pruned_class(cls: type) -> type:
    """``cls`` whose instances resize themselves to ``config.spa_pruning['shapes']`` (and set
    the RMSNorm epsilons of ``config.spa_pruning['epsilons']``)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, config, *args, **kwargs)
        overrides = getattr(config, OVERRIDES_KEY, None) or {}
        if overrides.get("shapes"):
            resize_parameters(self, overrides["shapes"])
        for name, eps in (overrides.get("epsilons") or {}).items():
            self.get_submodule(name).variance_epsilon = float(eps)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__,
                                        "__qualname__": cls.__qualname__})


def save_pruned(model: nn.Module, path: str | Path, plan: Plan | None = None, **kwargs: Any) -> None:
    """``model.save_pretrained(path)``, plus the pruning plan (``spa_plan.json``) when given."""
    model.save_pretrained(path, **kwargs)
    if plan is not None:
        plan.save(Path(path) / PLAN_FILE)


def _model_class(config: Any) -> type:
    ensure_torchvision()  # transformers' image utilities import torchvision
    import transformers

    names = getattr(config, "architectures", None) or []
    for name in names:
        cls = getattr(transformers, name, None)
        if isinstance(cls, type):
            return cls
    raise FrameworkError(f"config names no transformers model class ({names!r}); pass model_class=")


def load_pruned(path: str | Path, model_class: type | None = None, **kwargs: Any) -> nn.Module:
    """Load a model saved by ``save_pretrained`` after pruning, whatever its config expresses.

    ``model_class`` defaults to the config's ``architectures[0]``; keyword arguments go
    to ``from_pretrained``.
    """
    ensure_torchvision()  # transformers' image utilities import torchvision
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    cls = model_class or _model_class(config)
    if getattr(config, OVERRIDES_KEY, None):
        cls = pruned_class(cls)
    return cls.from_pretrained(path, config=config, **kwargs)

