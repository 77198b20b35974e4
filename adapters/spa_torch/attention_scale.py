"""Attention layers whose implicit softmax scale moves with the pruned head width.

``F.scaled_dot_product_attention(q, k, v)`` without ``scale=`` divides by
``sqrt(q.shape[-1])``. The exported ONNX graph holds that scale as a constant of the
unpruned width, so after pruning inside the heads the ONNX model still divides by the old
``sqrt(d)`` while the pruned module divides by the new one: the module runs, but computes
something else. Recording the query width of every such call, at export and again on the
pruned module, names the layers where it changed, so that :func:`spa_core.prune` can redo
the pruning without them (like a layer whose forward() hard-codes a width and fails).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .trace_fixes import static_size

SCALE_POSITION = 6  # scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


def _calling_module(modules: dict[int, str]) -> str | None:
    """The innermost module of the model whose forward() is on the call stack."""
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in modules:
            return modules[id(owner)]
        frame = frame.f_back
    return None


@contextmanager
def recording_attention_widths(model: nn.Module) -> Iterator[dict[str, int]]:
    """Yield ``{module name: query width}`` of the implicitly scaled attention calls made meanwhile."""
    modules = {id(m): name for name, m in model.named_modules()}
    widths: dict[str, int] = {}
    original = F.scaled_dot_product_attention

    def attention(*args: Any, **kwargs: Any) -> Any:
        implicit = kwargs.get("scale") is None and (len(args) <= SCALE_POSITION or args[SCALE_POSITION] is None)
        query = args[0] if args else kwargs.get("query")
        if implicit and isinstance(query, torch.Tensor):
            name = _calling_module(modules)
            if name is not None:
                widths.setdefault(name, static_size(query, -1))
        return original(*args, **kwargs)

    F.scaled_dot_product_attention = attention
    try:
        yield widths
    finally:
        F.scaled_dot_product_attention = original


def rescaled_attention(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Modules whose implicitly scaled attention now sees a different query width."""
    return sorted(name for name, width in after.items() if name in before and before[name] != width)
