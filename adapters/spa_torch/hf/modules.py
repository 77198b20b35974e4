"""Attribute updaters for Hugging Face ``transformers`` modules, found by duck typing.

After SPA slices a pruned model's weights, the PyTorch adapter recomputes each touched
module's bookkeeping attributes (:mod:`spa_torch.modules`). Transformer attention
modules keep head counts (``num_heads``, ``num_attention_heads``, ``n_heads``,
``num_key_value_heads``, ``num_key_value_groups``, ``all_head_size``, GPT-2's
``split_size``) that their ``forward`` reads; this module recomputes them from the
projection widths, which SPA always prunes in whole heads. Families are recognised by
their projection names, so the many copies of the same attention in ``transformers``
(BERT, RoBERTa, ViT, DeiT, LLaMA, Mistral, Qwen2...), GPT-2's, GPT-NeoX's and Phi-3's
fused projections and timm's fused-``qkv`` attention (ViT, DeiT, Swin) need no per-class code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .. import modules as torch_modules

# (query, key, value) projection names of attention modules with separate projections
QKV_NAMES: tuple[tuple[str, str, str], ...] = (
    ("q_proj", "k_proj", "v_proj"),
    ("query", "key", "value"),
    ("q_lin", "k_lin", "v_lin"),
    ("q", "k", "v"),
)
HEAD_DIM_NAMES = ("head_dim", "attention_head_size", "head_size")
QUERY_HEAD_NAMES = ("num_heads", "num_attention_heads", "n_heads", "n_head")


@dataclass(frozen=True)
class AttentionHeads:
    """Head layout of one attention module: query heads, key/value heads, head width."""

    query: int
    key_value: int
    head_dim: int


def is_conv1d(m: nn.Module) -> bool:
    """GPT-style ``Conv1D``: a linear layer storing its weight as ``(in, out)``."""
    return type(m).__name__ == "Conv1D" and hasattr(m, "nf") and hasattr(m, "nx")


def out_width(m: nn.Module) -> int:
    """Output features of a ``nn.Linear`` or ``Conv1D``."""
    return int(m.weight.shape[1] if is_conv1d(m) else m.weight.shape[0])


def _head_dim(m: nn.Module) -> int | None:
    for name in HEAD_DIM_NAMES:
        value = getattr(m, name, None)
        if isinstance(value, int) and value > 0:
            return value
    # timm's Swin WindowAttention keeps no head width, but a (positions, heads) bias table
    table, fused = getattr(m, "relative_position_bias_table", None), getattr(m, "qkv", None)
    if isinstance(table, torch.Tensor) and table.ndim == 2 and isinstance(fused, nn.Linear):
        return out_width(fused) // 3 // int(table.shape[1]) or None
    return None


def _projections(m: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module] | None:
    for names in QKV_NAMES:
        mods = [getattr(m, n, None) for n in names]
        if all(isinstance(p, nn.Module) and hasattr(p, "weight") for p in mods):
            return mods[0], mods[1], mods[2]
    return None


def attention_heads(m: nn.Module) -> AttentionHeads | None:
    """The head layout read from ``m``'s projection widths, or ``None`` if ``m`` is not attention."""
    head_dim = _head_dim(m)
    fused = getattr(m, "query_key_value", None)  # GPT-NeoX: (q, k, v) of each head side by side, no head count
    if isinstance(fused, nn.Linear) and head_dim and not any(hasattr(m, n) for n in QUERY_HEAD_NAMES):
        heads = out_width(fused) // 3 // head_dim
        return AttentionHeads(heads, heads, head_dim)
    if head_dim is None or not any(hasattr(m, n) for n in (*QUERY_HEAD_NAMES, "num_key_value_groups")):
        return None
    qkv = _projections(m)
    if qkv is not None:
        q, k, _ = (out_width(p) for p in qkv)
        return AttentionHeads(q // head_dim, k // head_dim, head_dim)
    fused = getattr(m, "c_attn", None)  # GPT-2: one Conv1D for q, k, v (k, v under cross-attention)
    if fused is not None and is_conv1d(fused):
        parts = 2 if hasattr(m, "q_attn") else 3
        heads = out_width(fused) // parts // head_dim
        return AttentionHeads(heads, heads, head_dim)
    fused = getattr(m, "qkv", None)  # timm: one nn.Linear for q, k, v
    if isinstance(fused, nn.Linear):
        heads = out_width(fused) // 3 // head_dim
        return AttentionHeads(heads, heads, head_dim)
    fused, out = getattr(m, "qkv_proj", None), getattr(m, "o_proj", None)  # Phi-3: [q | k | v] heads
    if isinstance(fused, nn.Linear) and isinstance(out, nn.Linear):
        query = int(out.weight.shape[1]) // head_dim
        return AttentionHeads(query, (out_width(fused) - query * head_dim) // (2 * head_dim), head_dim)
    return None


def update_attention(m: nn.Module, old: dict) -> None:
    """Recompute head-count attributes of an attention module from its projections."""
    heads = attention_heads(m)
    if heads is None:
        return
    for name in QUERY_HEAD_NAMES:
        if isinstance(getattr(m, name, None), int):
            setattr(m, name, heads.query)
    if isinstance(getattr(m, "num_key_value_heads", None), int):
        m.num_key_value_heads = heads.key_value
    if isinstance(getattr(m, "num_key_value_groups", None), int):
        if heads.query % heads.key_value:
            raise ValueError(f"{heads.query} query heads do not share {heads.key_value} key/value heads evenly")
        m.num_key_value_groups = heads.query // heads.key_value
    for name in ("all_head_size", "attn_dim"):  # BERT / timm: the concatenated heads' width
        if isinstance(getattr(m, name, None), int):
            setattr(m, name, heads.query * heads.head_dim)
    if isinstance(getattr(m, "split_size", None), int):
        m.split_size = heads.query * heads.head_dim
    # a forward that reads head counts from the model's config (Phi-3) gets a view of it
    # with its own counts: the shared config still describes the unpruned model (and
    # cannot describe uneven layers)
    config = getattr(m, "config", None)
    if isinstance(config, HeadCounts):
        config = config.base
    counts = {"num_attention_heads": heads.query, "num_key_value_heads": heads.key_value}
    counts = {k: v for k, v in counts.items() if hasattr(config, k)}
    if config is not None and counts:
        m.config = HeadCounts(config, counts) if any(getattr(config, k) != v for k, v in counts.items()) else config


class HeadCounts:
    """A model config as one pruned attention module sees it: its own head counts, the rest shared.

    Everything but the head counts is read from and written to ``base``, so switching the
    model's attention implementation still reaches the module.
    """

    def __init__(self, base: Any, counts: dict[str, int]):
        self.__dict__.update(base=base, counts=dict(counts))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "counts" not in self.__dict__:
            raise AttributeError(name)
        counts = self.__dict__["counts"]
        return counts[name] if name in counts else getattr(self.__dict__["base"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.counts:
            self.counts[name] = value
        else:
            setattr(self.base, name, value)


def share_config(model: nn.Module) -> None:
    """Give modules back the model's own config where it now says what their head-count view says."""
    for m in model.modules():
        view = getattr(m, "config", None)
        if isinstance(view, HeadCounts) and all(getattr(view.base, k) == v for k, v in view.counts.items()):
            m.config = view.base


def update_conv1d(m: nn.Module, old: dict) -> None:
    m.nx, m.nf = (int(d) for d in m.weight.shape)


def register_updaters(model: nn.Module) -> list[type]:
    """Register updaters for the attention and ``Conv1D`` classes found in ``model``.

    Returns the newly registered classes. Classes that already have an updater (the
    adapter's own, or one registered before) are left alone.
    """
    added = []
    for m in model.modules():
        t = type(m)
        if t in torch_modules.UPDATERS:
            continue
        if is_conv1d(m):
            torch_modules.UPDATERS[t] = update_conv1d
        elif attention_heads(m) is not None:
            torch_modules.UPDATERS[t] = update_attention
        else:
            continue
        added.append(t)
    return added


def attention_layers(model: nn.Module) -> dict[str, AttentionHeads]:
    """Every attention module of ``model`` by name, with its current head layout."""
    found = {}
    for name, m in model.named_modules():
        heads = attention_heads(m)
        if heads is not None:
            found[name] = heads
    return found
