"""Pruning the embedding width (the residual stream) of RMSNorm transformers, exactly.

Every norm on the residual stream normalises over the hidden axis, which makes it a
barrier: ``mean(x**2)`` divides by the width, so removing a channel is not the same as
zeroing it. RMSNorm can be made exact anyway. Written as ``sum(x**2) * (1/D)`` with the
*original* width ``D`` it is the same function, a sum is neutral to zeroed channels, and
the engine ties the hidden axis through it. The pruned layer, back in its own form
(``mean`` over the ``D'`` kept channels), computes the same thing when

    eps' = eps * D / D'        weight' = weight * sqrt(D / D')

(``x / sqrt(S/D + eps) = sqrt(D/D') * x / sqrt(S/D' + eps*D/D')``), which a config can
say: ``hidden_size = D'``, ``rms_norm_eps = eps'`` (the same for every norm, since the
residual stream is one channel group).

:func:`sum_form` switches the norms to the sum form for export (only those whose sum
form is checked to equal their own forward on random data), :func:`restore` switches
them back and rescales the pruned ones. LayerNorm has no such rewrite (it subtracts the
mean, which a removed channel would shift), so models with LayerNorm keep their width.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

WIDTH = "spa_rms_width"  # instance attribute: the width the sum form divides by


def _sum_forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """LLaMA's RMSNorm with ``mean`` written as ``sum * (1 / original width)``."""
    input_dtype = hidden_states.dtype
    hidden_states = hidden_states.to(torch.float32)
    variance = hidden_states.pow(2).sum(-1, keepdim=True) * (1.0 / getattr(self, WIDTH))
    hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
    return self.weight * hidden_states.to(input_dtype)


def rms_norms(model: nn.Module) -> dict[str, nn.Module]:
    """RMSNorm modules of the LLaMA form (``variance_epsilon``, a weight per channel), by name."""
    found = {}
    for name, m in model.named_modules():
        weight = getattr(m, "weight", None)
        if (
            type(m).__name__.endswith("RMSNorm")
            and isinstance(getattr(m, "variance_epsilon", None), float)
            and isinstance(weight, torch.Tensor)
            and weight.ndim == 1
        ):
            found[name] = m
    return found


def _same_function(m: nn.Module) -> bool:
    """Whether the sum form computes what ``m``'s own forward does (checked on random data)."""
    x = torch.randn(3, int(m.weight.numel()), generator=torch.Generator().manual_seed(0)).to(m.weight.device)
    with torch.no_grad():
        own = m(x)
        setattr(m, WIDTH, int(m.weight.numel()))
        try:
            mine = _sum_forward(m, x)
        finally:
            delattr(m, WIDTH)
    return bool(torch.allclose(own, mine, rtol=1e-5, atol=1e-6))


@contextmanager
def sum_form(model: nn.Module) -> Iterator[list[str]]:
    """Within the block, ``model``'s RMSNorms compute ``mean`` as ``sum * (1/D)``; yields their names.

    Copies made inside the block (the pruned model) keep the sum form until :func:`restore`.
    """
    switched = [name for name, m in rms_norms(model).items() if _same_function(m)]
    for name in switched:
        m = model.get_submodule(name)
        setattr(m, WIDTH, int(m.weight.numel()))
        m.forward = types.MethodType(_sum_forward, m)
    try:
        yield switched
    finally:
        restore(model)


def restore(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Back to each norm's own forward, rescaling the pruned ones; returns ``{name: (D, D')}``."""
    changed = {}
    for name, m in model.named_modules():
        if not hasattr(m, WIDTH):
            continue
        width, kept = getattr(m, WIDTH), int(m.weight.numel())
        delattr(m, WIDTH)
        m.__dict__.pop("forward", None)
        if kept != width:
            with torch.no_grad():
                m.weight.mul_((width / kept) ** 0.5)
            m.variance_epsilon = m.variance_epsilon * width / kept
            changed[name] = (width, kept)
    return changed


def embedding_width(model: nn.Module) -> int | None:
    """Width of the input embeddings (the residual stream), when the model says."""
    get = getattr(model, "get_input_embeddings", None)
    embeddings = get() if callable(get) else None
    weight = getattr(embeddings, "weight", None)
    return int(weight.shape[1]) if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None
