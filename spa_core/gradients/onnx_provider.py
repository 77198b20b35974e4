"""Gradient provider for plain ONNX models: the graph executed in torch.

Gradients come out keyed by initializer name and in the initializer's layout, so no
binding is needed. A model exported with a fixed batch size (``1`` is common) is run on
the batch whole when its shape computations allow it, and otherwise on slices of the
declared size; the loss is the size-weighted mean over slices, which is the batch's
mean loss, so gradients and Hessian products are unchanged by the slicing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import onnx
import torch

from ..errors import FrameworkError
from ..io import load_model
from ..types import ExportedModel
from .calibration import Batch
from .onnx_torch import OnnxTorchGraph
from .torch_common import Tensors, TorchFunction, to_tensor

log = logging.getLogger(__name__)


class OnnxFunction(TorchFunction):
    """A loss over an ONNX graph run in torch; parameters are its float initializers."""

    def __init__(self, model: onnx.ModelProto, loss: str | Callable[..., Any]) -> None:
        super().__init__(loss)
        self.graph = OnnxTorchGraph(model)
        self.slice_size: int | None = None  # set once whole batches failed

    def parameters(self) -> Tensors:
        return self.graph.parameters

    def use_batch_statistics(self) -> None:
        """Inference-mode BatchNormalization nodes normalise by each batch's statistics."""
        self.graph.use_batch_statistics()

    def forward(self, params: Tensors, inputs: tuple[torch.Tensor, ...]) -> Any:
        outputs = self.graph.run(params, inputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def batch_loss(self, params: Tensors, batch: Batch) -> torch.Tensor:
        inputs = tuple(to_tensor(x) for x in batch.inputs)
        targets = to_tensor(batch.targets)
        if self.slice_size is None:
            try:
                return self.loss_fn(self.forward(params, inputs), targets)
            except (RuntimeError, IndexError, ValueError) as exc:
                size = self.graph.declared_batch()
                if not size or size >= batch.size:
                    raise FrameworkError(f"the ONNX executor failed on a calibration batch: {exc}") from exc
                log.debug("whole batch failed (%s); running slices of %d", exc, size)
                self.slice_size = size
        return self._sliced_loss(params, inputs, targets, batch.size)

    def _sliced_loss(self, params: Tensors, inputs: tuple[torch.Tensor, ...], targets: Any, n: int) -> torch.Tensor:
        step = int(self.slice_size or n)
        total = None
        for start in range(0, n - step + 1, step):
            part = tuple(x[start : start + step] for x in inputs)
            y = targets[start : start + step] if targets is not None else None
            loss = self.loss_fn(self.forward(params, part), y) * (step / (n - n % step))
            total = loss if total is None else total + loss
        if total is None:
            raise FrameworkError(f"a calibration batch of {n} is smaller than the model's fixed batch size {step}")
        return total


def provider(model: Any, exported: ExportedModel | None, loss: str | Callable[..., Any]) -> OnnxFunction:
    """The registry entry for ``onnx``: ``model`` is a ModelProto or a path."""
    return OnnxFunction(load_model(model), loss)
