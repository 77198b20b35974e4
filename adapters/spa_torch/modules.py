"""Module attributes that follow parameter shapes, one updater per module family.

After parameters are sliced, each module's bookkeeping attributes (``in_channels``,
``num_features``...) are recomputed from its new tensors, so that ``print(model)``,
a fresh module built from the attributes, ``torch.jit.script`` and training all agree.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

Updater = Callable[[nn.Module, dict], "nn.Module | None"]
UPDATERS: dict[type, Updater] = {}


def updates(*types: type) -> Callable[[Updater], Updater]:
    def register(fn: Updater) -> Updater:
        for t in types:
            UPDATERS[t] = fn
        return fn

    return register


@updates(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(m: nn.Module, old: dict) -> None:
    out_c, in_per_group = m.weight.shape[:2]
    if old["groups"] > 1 and old["in_channels"] == old["groups"]:  # depthwise: one group per channel
        m.groups = out_c // (old["out_channels"] // old["groups"])
    m.in_channels, m.out_channels = in_per_group * m.groups, out_c


@updates(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def _conv_transpose(m: nn.Module, old: dict) -> None:
    in_c, out_per_group = m.weight.shape[:2]
    if old["groups"] > 1 and old["in_channels"] == old["groups"]:
        m.groups = in_c
    m.in_channels, m.out_channels = in_c, out_per_group * m.groups


@updates(nn.Linear)
def _linear(m: nn.Module, old: dict) -> None:
    m.out_features, m.in_features = m.weight.shape


@updates(nn.Bilinear)
def _bilinear(m: nn.Module, old: dict) -> None:
    m.out_features, m.in1_features, m.in2_features = m.weight.shape


@updates(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
def _batch_norm(m: nn.Module, old: dict) -> None:
    ref = m.weight if m.weight is not None else m.running_mean
    if ref is not None:
        m.num_features = ref.shape[0]


@updates(nn.GroupNorm)
def _group_norm(m: nn.Module, old: dict) -> None:
    if m.weight is not None:
        per_group = old["num_channels"] // old["num_groups"]
        m.num_channels = m.weight.shape[0]
        m.num_groups = m.num_channels // per_group


@updates(nn.LayerNorm)
def _layer_norm(m: nn.Module, old: dict) -> None:
    if m.weight is not None:
        m.normalized_shape = tuple(m.weight.shape)


@updates(nn.Embedding, nn.EmbeddingBag)
def _embedding(m: nn.Module, old: dict) -> None:
    m.num_embeddings, m.embedding_dim = m.weight.shape


@updates(nn.PReLU)
def _prelu(m: nn.Module, old: dict) -> None:
    m.num_parameters = m.weight.numel()


@updates(nn.LSTM, nn.GRU, nn.RNN)
def _recurrent(m: nn.Module, old: dict) -> None:
    m.hidden_size = m.weight_hh_l0.shape[1]
    m.input_size = m.weight_ih_l0.shape[1]
    m._init_flat_weights()


@updates(nn.MultiheadAttention)
def _multihead_attention(m: nn.Module, old: dict) -> nn.Module | None:
    """Heads are pruned whole; widths that no longer match become a PrunedMultiheadAttention."""
    if not m._qkv_same_embed_dim:
        raise ValueError("separate q/k/v projection weights (kdim/vdim) are not supported")
    head_dim = old["embed_dim"] // old["num_heads"]
    inner = m.in_proj_weight.shape[0] // 3
    e_in, e_out = m.in_proj_weight.shape[1], m.out_proj.weight.shape[0]
    m.out_proj.out_features, m.out_proj.in_features = m.out_proj.weight.shape
    if inner == e_in == e_out:
        m.embed_dim = m.kdim = m.vdim = inner
        m.num_heads, m.head_dim = inner // head_dim, head_dim
        return None
    from .layers import PrunedMultiheadAttention

    return PrunedMultiheadAttention.from_module(m, head_dim)


def _channel_weight(m: nn.Module) -> nn.Parameter | None:
    """``m.weight`` when it is a per-channel (1-D) parameter, as in a normalisation layer."""
    weight = getattr(m, "weight", None)
    return weight if isinstance(weight, nn.Parameter) and weight.dim() == 1 else None


def _is_channel_group_norm(m: nn.Module) -> bool:
    """A normalisation outside ``torch.nn`` that computes statistics over ``groups`` groups of
    channels and has a per-channel ``weight`` (timm's EvoNorm2d S0/S1/S2 and their ``a``
    variants, whose ``group_std`` reshapes to ``(B, groups, C // groups, H, W)``)."""
    return (isinstance(getattr(m, "groups", None), int) and _channel_weight(m) is not None
            and not isinstance(m, nn.modules.conv._ConvNd))


def _channel_group_norm(m: nn.Module, old: dict) -> None:
    """Keep the group size: the analysis removes whole groups from a group-statistics reshape
    (removing channels inside every group would change the statistics of the ones kept)."""
    per_group = old["channels"] // old["groups"]
    m.groups = m.weight.shape[0] // per_group


DUCK_UPDATERS: list[tuple[Callable[[nn.Module], bool], Updater]] = [(_is_channel_group_norm, _channel_group_norm)]
"""Updaters for modules of other libraries, recognised by what they hold rather than by type
(so that ``spa_torch`` need not import them)."""

SNAPSHOT_FIELDS = ("groups", "in_channels", "out_channels", "num_channels", "num_groups", "embed_dim", "num_heads")


def snapshot(m: nn.Module) -> dict:
    """The attributes an updater needs from before slicing (and ``channels``: a 1-D weight's length)."""
    fields = {f: getattr(m, f) for f in SNAPSHOT_FIELDS if hasattr(m, f)}
    weight = _channel_weight(m)
    if weight is not None:
        fields["channels"] = weight.shape[0]
    return fields


def update_module(m: nn.Module, old: dict) -> nn.Module | None:
    """Recompute ``m``'s attributes; return a replacement module when its type cannot hold the new shapes."""
    for t in type(m).__mro__:
        if t in UPDATERS:
            return UPDATERS[t](m, old)
    for recognises, updater in DUCK_UPDATERS:
        if recognises(m):
            return updater(m, old)
    return None
