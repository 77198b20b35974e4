"""Hugging Face ``transformers`` support for the PyTorch adapter.

Prune whole attention heads (whole key/value groups under grouped-query attention),
MLP hidden units and, for RMSNorm models, the embedding width of ``transformers`` models,
and get a ``transformers`` model back whose config matches its weights::

    from spa_torch.hf import prune_transformer, load_pruned
    out = prune_transformer(model, ratio=0.5)        # model: e.g. LlamaForCausalLM
    out = prune_transformer(model, ratio=0.5, hidden=True)   # the residual stream too
    out.model.save_pretrained("pruned")              # out.fit.exact: config says it all
    again = load_pruned("pruned")                    # works either way

timm's transformers (ViT, DeiT, Swin) need nothing from this package beyond the
attention updaters the PyTorch adapter registers itself: ``spa_core.prune`` prunes their
heads and MLP units. :mod:`.tiny` builds small random-weight models of every family.

``transformers`` is imported only by :func:`load_pruned`; the rest works on any
``PreTrainedModel`` it is given.
"""

from .config import ConfigFit, fit_config
from .modules import AttentionHeads, attention_heads, attention_layers, register_updaters
from .pretrained import load_pruned, pruned_class, resize_parameters, save_pruned
from .prune import TransformerPruneResult, prune_transformer
from .wrapper import ExportWrapper, example_inputs

__all__ = [
    "AttentionHeads",
    "ConfigFit",
    "ExportWrapper",
    "TransformerPruneResult",
    "attention_heads",
    "attention_layers",
    "example_inputs",
    "fit_config",
    "load_pruned",
    "prune_transformer",
    "pruned_class",
    "register_updaters",
    "resize_parameters",
    "save_pruned",
]
