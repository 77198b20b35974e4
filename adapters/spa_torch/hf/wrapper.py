"""A thin ``nn.Module`` around a ``transformers`` model, for ONNX export.

``transformers`` models take keyword arguments and return ``ModelOutput`` objects and
caches; the TorchScript exporter wants positional tensors in and tensors out. The
wrapper feeds one tensor to the model's main input (``input_ids``, ``pixel_values``...),
passes an all-ones ``attention_mask`` to text models (without one, mask creation looks
for packed sequences with ``torch.diff``, which has no ONNX export), turns the cache
off and returns the first output (logits, or the last hidden state of a base model).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn as nn


class ExportWrapper(nn.Module):
    """``forward(x) -> model(**{main_input: x, ...})[0]``; the model is ``self.model``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.input_name = getattr(model, "main_input_name", "input_ids")
        params = inspect.signature(model.forward).parameters
        self._mask = self.input_name == "input_ids" and "attention_mask" in params
        self._cache = "use_cache" in params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kwargs: dict[str, Any] = {self.input_name: x, "return_dict": False}
        if self._mask:
            kwargs["attention_mask"] = torch.ones_like(x)
        if self._cache:
            kwargs["use_cache"] = False
        out = self.model(**kwargs)
        return out[0] if isinstance(out, tuple | list) else out


def example_inputs(model: nn.Module, batch: int = 1, length: int = 8) -> torch.Tensor:
    """A random input for ``model``'s main input: token ids, or images of the configured size."""
    config = model.config
    name = getattr(model, "main_input_name", "input_ids")
    generator = torch.Generator().manual_seed(0)
    if name == "pixel_values":
        size = getattr(config, "image_size", 224)
        size = tuple(size) if isinstance(size, list | tuple) else (size, size)
        return torch.randn(batch, getattr(config, "num_channels", 3), *size, generator=generator)
    if name == "input_ids":
        return torch.randint(0, config.vocab_size, (batch, length), generator=generator)
    raise ValueError(f"no example input for main input '{name}'; pass example_inputs")
