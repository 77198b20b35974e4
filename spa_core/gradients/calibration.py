"""Calibration data and loss for data-driven criteria, in one object.

Users pass ``data=`` (an iterable of batches) and ``loss=`` to :func:`spa_core.prune`;
both end up in a :class:`Calibration`. A batch is ``(inputs, targets)``: ``inputs`` is an
array (or a tuple of arrays for a multi-input model), ``targets`` whatever the loss
takes (class indices for ``cross_entropy``). A bare array is a batch without targets
(for a callable loss that ignores them). Arrays may be numpy or the framework's own
tensors; each gradient provider converts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidOptionError

DEFAULT_LOSS = "cross_entropy"


@dataclass(frozen=True)
class Batch:
    """One calibration batch: the model's inputs (a tuple) and the loss targets."""

    inputs: tuple[Any, ...]
    targets: Any = None

    @property
    def size(self) -> int:
        """Number of examples (the leading dimension of the first input)."""
        first = self.inputs[0]
        shape = getattr(first, "shape", None)
        return int(shape[0]) if shape is not None and len(shape) else 1


@dataclass
class Calibration:
    """What data-driven criteria are computed from.

    Attributes:
        data: an iterable of batches ``(inputs, targets)`` (a list, a generator, a
            ``torch.utils.data.DataLoader``, a ``tf.data.Dataset`` of numpy-convertible
            pairs...). It is read once.
        loss: a built-in loss name (``cross_entropy``, ``mse``; see
            :func:`spa_core.gradients.available_losses`) or a callable
            ``loss(outputs, targets) -> scalar`` in the framework's own tensors.
        max_batches: read at most this many batches (``None``: all).
        hessian_samples: Rademacher vectors per batch for the Hessian-diagonal estimate.
        batch_statistics: normalise every BatchNorm by the calibration batch's own
            statistics (as in training) instead of its running statistics. Pruning at
            initialisation sets it: an untrained network's running statistics are (0, 1),
            so in inference mode its BatchNorms do nothing and the scores would describe a
            network without normalisation, not the one that will be trained. The model's
            running statistics are never changed.
    """

    data: Iterable[Any]
    loss: str | Callable[..., Any] = DEFAULT_LOSS
    max_batches: int | None = None
    hessian_samples: int = 4
    batch_statistics: bool = False

    def batches(self) -> list[Batch]:
        """The batches, normalised, at most ``max_batches``; an error when there are none."""
        if self.max_batches is not None and self.max_batches < 1:
            raise InvalidOptionError(f"max_batches must be >= 1, got {self.max_batches}")
        if self.hessian_samples < 1:
            raise InvalidOptionError(f"hessian_samples must be >= 1, got {self.hessian_samples}")
        out: list[Batch] = []
        for item in _iterate(self.data):
            if self.max_batches is not None and len(out) >= self.max_batches:
                break
            out.append(as_batch(item))
        if not out:
            raise InvalidOptionError("the calibration data holds no batch; pass data=[(inputs, targets), ...]")
        return out


def as_batch(item: Any) -> Batch:
    """``(inputs, targets)``, ``((x1, x2), targets)``, a dict with ``inputs``/``targets``, or a bare array."""
    if isinstance(item, Batch):
        return item
    if isinstance(item, dict):
        if "inputs" not in item:
            raise InvalidOptionError("a calibration batch given as a dict needs an 'inputs' entry")
        return Batch(_as_tuple(item["inputs"]), item.get("targets"))
    if isinstance(item, tuple | list):
        if len(item) != 2:
            raise InvalidOptionError(
                f"a calibration batch must be (inputs, targets), got a sequence of {len(item)} items; "
                "pass ((x1, x2), targets) for several inputs"
            )
        return Batch(_as_tuple(item[0]), item[1])
    if hasattr(item, "shape"):
        return Batch((item,), None)
    raise InvalidOptionError(f"cannot read a calibration batch from a {type(item).__name__}")


def as_calibration(data: Any, loss: str | Callable[..., Any] | None = None) -> Calibration:
    """A :class:`Calibration` from what the user passed as ``data`` and ``loss``."""
    if isinstance(data, Calibration):
        if loss is not None:
            data.loss = loss
        return data
    return Calibration(data=data, loss=DEFAULT_LOSS if loss is None else loss)


def _as_tuple(inputs: Any) -> tuple[Any, ...]:
    return tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)


def _iterate(data: Any) -> Iterable[Any]:
    if data is None:
        return []
    if hasattr(data, "shape") and not isinstance(data, Sequence):
        return [data]  # one array: one batch without targets
    try:
        return iter(data)
    except TypeError:
        raise InvalidOptionError(f"calibration data must be an iterable of batches, got {type(data).__name__}") from None


def to_numpy(value: Any) -> np.ndarray:
    """Any framework's tensor as a numpy array (torch tensors are detached first)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    return np.asarray(value)
