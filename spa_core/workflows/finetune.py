"""A small fine-tuning helper for torch, Keras and Flax models (replaceable by your own loop).

:func:`finetune` trains a (pruned) model for a few epochs with Adam on batches
``(inputs, targets)`` and returns it; it exists so that the workflows run end to end,
not to compete with a real training script. Any callable ``finetune(model, step) ->
model`` can replace it in :func:`spa_core.workflows.iterative_prune` and
:func:`spa_core.workflows.prune_then_finetune`.

Each framework's loop lives in its own module and is found through :data:`TRAINERS`, so
using one framework never imports another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import FrameworkError, InvalidOptionError


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the built-in fine-tuning loops.

    Attributes:
        epochs: passes over ``data``.
        lr: Adam learning rate.
        loss: a built-in loss name (``cross_entropy``, ``mse``) or a callable
            ``loss(outputs, targets)`` in the framework's tensors.
        weight_decay: decoupled weight decay (AdamW) when > 0.
        max_batches: stop each epoch after this many batches (``None``: all).
    """

    epochs: int = 1
    lr: float = 1e-3
    loss: str | Callable[..., Any] = "cross_entropy"
    weight_decay: float = 0.0
    max_batches: int | None = None


TRAINERS: dict[str, str] = {
    "torch": "spa_core.workflows.finetune_torch",
    "keras": "spa_core.workflows.finetune_keras",
    "jax": "spa_core.workflows.finetune_flax",
    "flax": "spa_core.workflows.finetune_flax",
}


def finetune(model: Any, data: Iterable[Any], *, framework: str | None = None, **settings: Any) -> Any:
    """Train ``model`` on ``data`` (re-iterable batches ``(inputs, targets)``) and return it.

    ``settings`` are :class:`TrainConfig` fields (``epochs``, ``lr``, ``loss``...). Torch and
    NNX models are trained in place; Keras models in place; linen models come back as a
    new :class:`spa_jax.LinenModel`.
    """
    from ..api import detect_framework

    try:
        config = TrainConfig(**settings)
    except TypeError as exc:
        raise InvalidOptionError(f"unknown fine-tuning setting: {exc}") from None
    if config.epochs < 0:
        raise InvalidOptionError(f"epochs must be >= 0, got {config.epochs}")
    framework = framework or detect_framework(model)
    module = TRAINERS.get(framework)
    if module is None:
        raise FrameworkError(f"no built-in fine-tuning loop for '{framework}' models; pass your own finetune callable")
    return importlib.import_module(module).train(model, data, config)


def epochs_of(data: Iterable[Any], config: TrainConfig) -> Iterable[Iterable[Any]]:
    """``config.epochs`` passes over ``data``, each cut at ``max_batches``."""
    for _ in range(config.epochs):
        for i, batch in enumerate(data):
            if config.max_batches is not None and i >= config.max_batches:
                break
            yield batch


def split_batch(batch: Any) -> tuple[tuple[Any, ...], Any]:
    """``(inputs, targets)`` with ``inputs`` as a tuple."""
    from ..gradients.calibration import as_batch

    b = as_batch(batch)
    return b.inputs, b.targets
