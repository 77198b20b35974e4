"""Prune a ``transformers`` model: whole attention heads, MLP hidden units, embedding width.

The model is wrapped for export (:class:`~spa_torch.hf.wrapper.ExportWrapper`), its
attention switched to the ``eager`` implementation while SPA exports and prunes it, and
the pruned copy gets its config rewritten to match its weights
(:func:`~spa_torch.hf.config.fit_config`). Under grouped-query attention the engine ties
every key/value head to the query heads that share it (``repeat_kv`` exports as
``Expand`` + ``Reshape``, whose pivot is the key/value head axis), so a group is pruned
whole and ``num_key_value_groups`` never changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

import spa_core
from spa_core.api import PruneResult
from spa_core.errors import FrameworkError, InvalidOptionError

from ..validate import check_against_onnx
from .config import ConfigFit, apply_fit, fit_config, mlp_widths
from .hidden import restore, sum_form
from .modules import attention_layers, register_updaters, share_config
from .wrapper import ExportWrapper, example_inputs

VALIDATION_RTOL = 1e-4

PREFIX = "model."  # parameter names of the wrapped model in the exported ONNX


@dataclass
class TransformerPruneResult:
    """A pruned ``transformers`` model and how it was obtained.

    Attributes:
        model: the pruned model (same class; config rewritten to match).
        result: SPA's result for the wrapped model (ONNX, plan, report; ``result.model``
            is the :class:`ExportWrapper` around ``model``).
        fit: what the config expresses, and the parameter shapes it cannot.
        seconds: wall time of export, analysis, pruning and config fitting.
    """

    model: nn.Module
    result: PruneResult
    fit: ConfigFit
    seconds: float

    @property
    def config_exact(self) -> bool:
        """Whether plain ``from_pretrained`` reloads the saved model."""
        return self.fit.exact


def _frozen_parameters(model: nn.Module, heads: bool, mlp: bool) -> list[str]:
    """ONNX names of the parameters to leave whole (attention and/or MLP input projections)."""
    prefixes = []
    if not heads:
        prefixes += [name + "." for name in attention_layers(model)]
    if not mlp:
        prefixes += [name + "." for name in mlp_widths(model)]
    return [PREFIX + n for n, _ in model.named_parameters() if any(n.startswith(p) for p in prefixes)]


def _set_attention(model: nn.Module, implementation: str) -> None:
    if getattr(model.config, "_attn_implementation", implementation) != implementation:
        model.set_attn_implementation(implementation)


def prune_transformer(
    model: nn.Module,
    example_input: torch.Tensor | None = None,
    *,
    ratio: float = 0.5,
    criterion: str = "l1",
    heads: bool = True,
    mlp: bool = True,
    hidden: bool = False,
    require_config: bool = False,
    inplace: bool = False,
    ignore: Iterable[str] = (),
    **prune_options: Any,
) -> TransformerPruneResult:
    """Prune attention heads, MLP hidden units and optionally the embedding width of a ``transformers`` model.

    Args:
        model: a ``PreTrainedModel`` (``BertForMaskedLM``, ``LlamaForCausalLM``,
            ``ViTForImageClassification``...).
        example_input: token ids or pixel values for the main input; random ones of the
            configured size when omitted.
        ratio, criterion: as in :func:`spa_core.prune` (per group: the same fraction of
            heads in every layer, and of MLP units in every block).
        heads, mlp: whether to prune attention heads / MLP hidden units.
        hidden: also prune the embedding width (the residual stream: embeddings, every
            projection's input, every block's output, the norms). Exact for RMSNorm
            models (LLaMA, Mistral, Qwen...; see :mod:`spa_torch.hf.hidden`); models
            with LayerNorm keep their width, and an error says so. Parameters in
            ``ignore`` are left whole on every axis, so ignoring a projection also keeps
            the embedding width.
        require_config: raise unless the config alone can describe the result (so
            ``save_pretrained`` -> ``from_pretrained`` works without SPA). Models that
            derive the head width from the hidden size (BERT, GPT-2, DistilBERT) need
            ``heads=False`` for that.
        ignore, prune_options: passed on to :func:`spa_core.prune` (``round_to``,
            ``min_keep``, ``max_ratio``, ``global_ranking``...).
    """
    if require_config and prune_options.get("global_ranking"):
        raise InvalidOptionError(
            "global ranking prunes layers unevenly, which no transformers config expresses; "
            "drop require_config or global_ranking"
        )
    if not (heads or mlp):
        raise InvalidOptionError("nothing to prune: heads=False and mlp=False")
    if hidden and not (heads and mlp):
        raise InvalidOptionError(
            "hidden=True needs heads=True and mlp=True: leaving the projections whole (ignore) "
            "blocks every axis of their weights, the embedding width too"
        )
    t0 = time.perf_counter()
    register_updaters(model)
    frozen = _frozen_parameters(model, heads, mlp)
    x = example_inputs(model) if example_input is None else example_input
    original = getattr(model.config, "_attn_implementation", None) or "eager"
    _set_attention(model, "eager")  # the reference attention; exports op by op
    try:
        with contextlib.ExitStack() as stack:
            if hidden and not stack.enter_context(sum_form(model)):
                raise InvalidOptionError(
                    f"{type(model).__name__} has no RMSNorm of the LLaMA form: its norms normalise over "
                    "the embedding width (LayerNorm subtracts the mean), so that width cannot be pruned exactly"
                )
            result = spa_core.prune(
                ExportWrapper(model), (x,), ratio=ratio, criterion=criterion, inplace=inplace,
                ignore=[*ignore, *frozen], **prune_options,
            )
            pruned = result.model.model
            if restore(pruned):  # norms back in their own form, rescaled: check again
                check_against_onnx(result.model, result.onnx, (x,), VALIDATION_RTOL)
    finally:
        _set_attention(model, original)
    _set_attention(pruned, original)
    fit = fit_config(pruned, pruned.config)
    apply_fit(pruned.config, fit)
    share_config(pruned)  # per-module head counts are now the config's own (when even)
    if require_config and not fit.exact:
        raise FrameworkError("the pruned model's config cannot describe it: " + "; ".join(fit.notes))
    return TransformerPruneResult(pruned, result, fit, time.perf_counter() - t0)
