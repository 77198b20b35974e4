"""Layers for pruned shapes that stock PyTorch modules cannot express.

``nn.MultiheadAttention`` ties the query width, the inner (heads x head_dim) width
and the output width to one ``embed_dim``. Pruning heads shrinks only the inner
width, so a pruned attention becomes :class:`PrunedMultiheadAttention`: same call
signature and results, separate widths.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PrunedMultiheadAttention(nn.Module):
    """Multi-head attention with ``num_heads * head_dim`` independent of ``embed_dim``.

    Parameters keep ``nn.MultiheadAttention``'s names (``in_proj_weight``,
    ``in_proj_bias``, ``out_proj``), so state_dicts of pruned models load here.
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, out_dim: int, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0):
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim, self.out_dim = embed_dim, num_heads, head_dim, out_dim
        self.batch_first, self.dropout = batch_first, dropout
        inner = num_heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner)) if bias else None
        self.out_proj = nn.Linear(inner, out_dim, bias=bias)

    @classmethod
    def from_module(cls, m: nn.MultiheadAttention, head_dim: int) -> PrunedMultiheadAttention:
        inner = m.in_proj_weight.shape[0] // 3
        new = cls(m.in_proj_weight.shape[1], inner // head_dim, head_dim, m.out_proj.weight.shape[0],
                  bias=m.in_proj_bias is not None, batch_first=m.batch_first, dropout=m.dropout)
        new.in_proj_weight = m.in_proj_weight
        new.in_proj_bias = m.in_proj_bias
        new.out_proj = nn.Linear(inner, new.out_dim, bias=m.out_proj.bias is not None)
        new.out_proj.weight = m.out_proj.weight
        new.out_proj.bias = m.out_proj.bias
        return new.train(m.training)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, n, _ = query.shape
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)

        def heads(x, w, bias):
            return F.linear(x, w, bias).reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(query, w_q, b_q), heads(key, w_k, b_k), heads(value, w_v, b_v)
        scores = (q @ k.transpose(-2, -1)) / self.head_dim**0.5
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
        if is_causal:
            causal = torch.ones(n, k.shape[2], dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(causal, float("-inf"))
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :].bool(), float("-inf"))
        weights = F.dropout(scores.softmax(-1), self.dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(1) if average_attn_weights else weights
