"""Gradient provider for native PyTorch models: torch autograd on the ``nn.Module``.

The module runs through ``torch.func.functional_call`` with fresh leaf tensors for its
parameters and copies of its buffers, in inference mode (dropout off, BatchNorm on its
running statistics, or on batch statistics when asked), so scoring never changes the model: not its weights, not its
``.grad``, not its BatchNorm statistics, not its train/eval mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.func import functional_call

from ..types import ExportedModel
from .torch_common import Tensors, TorchFunction


@contextlib.contextmanager
def inference_mode(module: torch.nn.Module) -> Iterator[None]:
    """``module.eval()`` for the duration, restoring every submodule's mode after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.train(training)


class TorchModuleFunction(TorchFunction):
    """A loss over an ``nn.Module``; parameters named as in ``named_parameters()``."""

    def __init__(self, module: torch.nn.Module, loss: str | Callable[..., Any], names: set[str] | None = None) -> None:
        super().__init__(loss)
        self.module = module
        canonical: dict[int, str] = {}
        tensors: Tensors = {}
        self.aliases: dict[str, str] = {}
        """Every parameter name -> the first name of the same tensor (tied weights)."""
        for name, p in module.named_parameters(remove_duplicate=False):
            if p.dtype.is_floating_point:
                self.aliases[name] = canonical.setdefault(id(p), name)
                tensors.setdefault(self.aliases[name], p)
        wanted = set(tensors) if names is None else {self.aliases[n] for n in names if n in self.aliases}
        self._params = {n: t for n, t in tensors.items() if n in wanted}
        self._buffers = {n: b for n, b in module.named_buffers()}
        self.batch_statistics = False

    def parameters(self) -> Tensors:
        return self._params

    def forward(self, params: Tensors, inputs: tuple[torch.Tensor, ...]) -> Any:
        buffers = {n: b.detach().clone() for n, b in self._buffers.items()}
        with inference_mode(self.module):
            if self.batch_statistics:  # the buffers are copies: their update is thrown away
                for m in self.module.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.train(True)
            return functional_call(self.module, {**params, **buffers}, inputs)

    def use_batch_statistics(self) -> None:
        """BatchNorms normalise by each batch's statistics (dropout stays off)."""
        self.batch_statistics = True


def provider(model: Any, exported: ExportedModel | None, loss: str | Callable[..., Any]) -> TorchModuleFunction:
    """The registry entry for ``torch``: derivatives for the parameters the export bound."""
    names = {b.native_name for b in exported.parameter_map.values()} if exported is not None else None
    return TorchModuleFunction(model, loss, names)
