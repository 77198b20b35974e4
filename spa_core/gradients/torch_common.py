"""Gradients and Hessian-vector products with torch autograd, for any forward function.

:class:`TorchFunction` implements the :class:`~spa_core.gradients.driver.Differentiable`
protocol once for every provider whose forward pass runs in torch: a native
``nn.Module`` (:mod:`.torch_provider`) and an ONNX graph executed in torch
(:mod:`.onnx_provider`). Subclasses give the parameters and the forward pass; this
class builds fresh leaf tensors per call (the model's own tensors and ``.grad`` are never
touched) and takes first and second derivatives (``H v`` by double backward, Pearlmutter
1994).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidOptionError
from .calibration import Batch

Tensors = dict[str, torch.Tensor]


def _first(outputs: Any) -> torch.Tensor:
    """The first output of a model that returns several (tuple, list or dict)."""
    if isinstance(outputs, dict):
        return next(iter(outputs.values()))
    if isinstance(outputs, tuple | list):
        return outputs[0]
    return outputs


def _cross_entropy(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(_first(outputs), targets.long())


def _mse(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    out = _first(outputs)
    return F.mse_loss(out, targets.to(out.dtype).reshape(out.shape))


def _pseudo_label(outputs: Any, targets: Any) -> torch.Tensor:
    logits = _first(outputs)
    return F.cross_entropy(logits, logits.detach().argmax(dim=1))


LOSSES: dict[str, Callable[[Any, Any], torch.Tensor]] = {
    "cross_entropy": _cross_entropy,
    "mse": _mse,
    "pseudo_label": _pseudo_label,
}
"""Built-in losses: ``cross_entropy`` (logits, class indices), ``mse``, ``pseudo_label``
(cross-entropy against the model's own prediction: for unlabelled calibration data)."""


def torch_loss(loss: str | Callable[..., Any]) -> Callable[[Any, Any], torch.Tensor]:
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise InvalidOptionError(f"unknown loss '{loss}'; use one of {', '.join(LOSSES)} or pass a callable")
    return LOSSES[loss]


def to_tensor(value: Any, device: torch.device | None = None) -> torch.Tensor | None:
    """A numpy array / tensor as a torch tensor (floating values as float32)."""
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        array = np.asarray(value)
        value = torch.from_numpy(array.astype(np.float32) if array.dtype == np.float64 else array.copy())
    return value.to(device) if device is not None else value


class TorchFunction:
    """A loss over a torch forward pass, differentiated w.r.t. named parameters."""

    def __init__(self, loss: str | Callable[..., Any]) -> None:
        self.loss_fn = torch_loss(loss)

    # -- what subclasses provide
    def parameters(self) -> Tensors:
        """The parameter tensors, by name (read, never modified)."""
        raise NotImplementedError

    def forward(self, params: Tensors, inputs: tuple[torch.Tensor, ...]) -> Any:
        """The model's outputs with ``params`` in place of its parameters."""
        raise NotImplementedError

    def device(self) -> torch.device:
        first = next(iter(self.parameters().values()), None)
        return first.device if first is not None else torch.device("cpu")

    # -- the Differentiable protocol
    def parameter_values(self) -> dict[str, np.ndarray]:
        return {n: t.detach().cpu().numpy() for n, t in self.parameters().items()}

    def batch_loss(self, params: Tensors, batch: Batch) -> torch.Tensor:
        dev = self.device()
        inputs = tuple(to_tensor(x, dev) for x in batch.inputs)
        return self.loss_fn(self.forward(params, inputs), to_tensor(batch.targets, dev))

    def gradient(self, batch: Batch) -> dict[str, np.ndarray]:
        leaves = self._leaves()
        with torch.enable_grad():
            loss = self.batch_loss(leaves, batch)
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        return self._to_numpy(leaves, grads)

    def hvp(self, batch: Batch, vector: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        leaves = self._leaves()
        names = list(leaves)
        with torch.enable_grad():
            loss = self.batch_loss(leaves, batch)
            grads = torch.autograd.grad(loss, [leaves[n] for n in names], create_graph=True, allow_unused=True)
            dot = sum(
                (g * torch.as_tensor(vector[n], dtype=g.dtype, device=g.device)).sum()
                for n, g in zip(names, grads)
                if g is not None and n in vector
            )
            if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
                return {n: np.zeros(tuple(leaves[n].shape), np.float32) for n in names}
            hv = torch.autograd.grad(dot, [leaves[n] for n in names], allow_unused=True)
        return self._to_numpy(leaves, hv)

    # -- helpers
    def _leaves(self) -> Tensors:
        return {n: t.detach().clone().requires_grad_(True) for n, t in self.parameters().items()}

    @staticmethod
    def _to_numpy(leaves: Tensors, grads: tuple[torch.Tensor | None, ...]) -> dict[str, np.ndarray]:
        return {
            n: (np.zeros(tuple(t.shape), np.float32) if g is None else g.detach().cpu().numpy())
            for (n, t), g in zip(leaves.items(), grads)
        }
