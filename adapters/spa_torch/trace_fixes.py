"""Workarounds, active only while SPA exports a module, for calls the TorchScript tracer breaks.

* ``F.scaled_dot_product_attention(..., is_causal=flag)``: the tracer hands a Python
  ``bool`` keyword argument of a sub-module call on as a 0-d tensor, which the ATen
  binding rejects ("argument 'is_causal' must be bool, not Tensor"; timm's EVA models).
  The flag is a constant of the traced graph, so it is turned back into a ``bool``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F


def _as_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value


@contextmanager
def tracing_fixes() -> Iterator[None]:
    """Patch ``F.scaled_dot_product_attention`` for the duration of an export."""
    original = F.scaled_dot_product_attention

    def attention(*args: Any, **kwargs: Any) -> Any:
        if "is_causal" in kwargs:
            kwargs["is_causal"] = _as_bool(kwargs["is_causal"])
        elif len(args) > 5:
            args = (*args[:5], _as_bool(args[5]), *args[6:])
        return original(*args, **kwargs)

    F.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original
