"""Tiny ``transformers`` and ``timm`` models with random weights, for tests and benchmarks.

Each builder makes a real library model (``BertForMaskedLM``, ``LlamaForCausalLM``,
timm's ``VisionTransformer``...) from a small config, nothing downloaded: 2 layers,
hidden width 64, 4 attention heads (the LLaMA-style decoder shares 2 key/value heads
between them, grouped-query attention, with a gated SwiGLU MLP), images of 32x32.
They are small enough that export, analysis and pruning take a few seconds on 2 CPU
cores, and big enough that every structure the pruning has to keep consistent (heads,
key/value groups, fused QKV projections, tied embeddings, windows) is there.

In this project's environment ``transformers`` model classes and ``timm`` import only
after :func:`spa_torch.torchvision_compat.ensure_torchvision` (see
``/work/shared/ENVIRONMENT.md``); callers do that first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

LAYERS, HIDDEN, HEADS, MLP, VOCAB, POSITIONS, IMAGE = 2, 64, 4, 128, 100, 32, 32


def bert() -> nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    return BertForMaskedLM(BertConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=MLP, max_position_embeddings=POSITIONS,
    ))


def distilbert() -> nn.Module:
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    return DistilBertForMaskedLM(DistilBertConfig(
        vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=MLP,
        max_position_embeddings=POSITIONS,
    ))


def gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=MLP, n_positions=POSITIONS,
        bos_token_id=0, eos_token_id=0,
    ))


def vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(
        hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=MLP,
        image_size=IMAGE, patch_size=8, num_labels=10,
    ))


def llama() -> nn.Module:
    """A LLaMA-style decoder: grouped-query attention (4 query heads, 2 key/value heads), SwiGLU MLP."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        num_key_value_heads=HEADS // 2, intermediate_size=MLP, max_position_embeddings=POSITIONS,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    ))


def timm_vit() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=IMAGE, patch_size=8, embed_dim=HIDDEN, depth=LAYERS, num_heads=HEADS,
                             mlp_ratio=MLP / HIDDEN, num_classes=10)


def timm_deit() -> nn.Module:
    """DeiT with its distillation token and second head."""
    from timm.models.deit import VisionTransformerDistilled

    return VisionTransformerDistilled(img_size=IMAGE, patch_size=8, embed_dim=HIDDEN, depth=LAYERS,
                                      num_heads=HEADS, mlp_ratio=MLP / HIDDEN, num_classes=10)


def timm_swin() -> nn.Module:
    """Swin: two stages (window attention, shifted windows, patch merging in between)."""
    from timm.models.swin_transformer import SwinTransformer

    return SwinTransformer(img_size=IMAGE, patch_size=4, window_size=4, embed_dim=HIDDEN // 2, depths=(2, 2),
                           num_heads=(2, 4), mlp_ratio=2.0, num_classes=10)


def _decoder(config_name: str, model_name: str, **extra: object) -> Callable[[], nn.Module]:
    """A builder for one more ``transformers`` family, sized like the others."""

    def build() -> nn.Module:
        import transformers

        fields = {"intermediate_size": MLP, "max_position_embeddings": POSITIONS, **extra}
        config = getattr(transformers, config_name)(
            vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            **{k: v for k, v in fields.items() if v is not None},
        )
        return getattr(transformers, model_name)(config)

    return build


# More families, for the coverage benchmark and the slow tests.
EXTRA: dict[str, Callable[[], nn.Module]] = {
    "roberta": _decoder("RobertaConfig", "RobertaForMaskedLM", pad_token_id=1, max_position_embeddings=40),
    "opt": _decoder("OPTConfig", "OPTForCausalLM", ffn_dim=MLP, word_embed_proj_dim=HIDDEN, intermediate_size=None),
    "mistral-gqa": _decoder("MistralConfig", "MistralForCausalLM", num_key_value_heads=2),
    "qwen2-gqa": _decoder("Qwen2Config", "Qwen2ForCausalLM", num_key_value_heads=2),
    "qwen3-gqa": _decoder("Qwen3Config", "Qwen3ForCausalLM", num_key_value_heads=2, head_dim=HIDDEN // HEADS),
    "gemma-gqa": _decoder("GemmaConfig", "GemmaForCausalLM", num_key_value_heads=2, head_dim=HIDDEN // HEADS),
    "phi3": _decoder("Phi3Config", "Phi3ForCausalLM", num_key_value_heads=2, pad_token_id=0, eos_token_id=0),
    "gpt-neox": _decoder("GPTNeoXConfig", "GPTNeoXForCausalLM"),
}

TRANSFORMERS: dict[str, Callable[[], nn.Module]] = {
    "bert": bert, "distilbert": distilbert, "gpt2": gpt2, "vit": vit, "llama-gqa": llama,
}
TIMM: dict[str, Callable[[], nn.Module]] = {"timm-vit": timm_vit, "timm-deit": timm_deit, "timm-swin": timm_swin}


def build(name: str, seed: int = 0) -> nn.Module:
    """The model ``name`` (a key of :data:`TRANSFORMERS`, :data:`EXTRA` or :data:`TIMM`), seeded, in eval mode."""
    torch.manual_seed(seed)
    return {**TRANSFORMERS, **EXTRA, **TIMM}[name]().eval()


def image_input(batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A random batch of images of the size the tiny vision models take."""
    return torch.randn(batch, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))
