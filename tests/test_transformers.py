"""Hugging Face ``transformers`` and ``timm`` transformers: heads and MLP units, pruned exactly.

Every model is a real library model with random weights (``spa_torch.hf.tiny``: 2
layers, width 64, 4 heads; the LLaMA-style decoder shares 2 key/value heads between its 4
query heads). Each is pruned once per session (cached) and checked for:

* the oracle: the pruned ONNX equals the original with the removed channels zeroed, and
  pruning really changed the function (else the oracle would prove nothing);
* the pruned ``transformers`` model computes what the pruned ONNX computes;
* its config matches its weights (a model built from the config has every shape), and
  ``save_pretrained`` -> ``from_pretrained`` (or ``load_pruned`` where the config cannot
  say it) gives the same outputs; ``generate`` runs, with a key/value cache whose
  greedy tokens equal the argmax of full forward passes;
* grouped-query attention: a key/value head and its query heads go together.

``transformers`` model classes and ``timm`` import only after the torchvision workaround
(``spa_torch.torchvision_compat``), as everywhere in this environment.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from spa_torch.torchvision_compat import ensure_torchvision  # noqa: E402

ensure_torchvision()
transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

from spa_torch.hf import (  # noqa: E402
    ExportWrapper,
    TransformerPruneResult,
    attention_layers,
    example_inputs,
    load_pruned,
    prune_transformer,
    pruned_class,
    tiny,
)
from spa_torch.hf.config import OVERRIDES_KEY, mlp_widths, shape_mismatches  # noqa: E402
from spa_torch.hf.hidden import sum_form  # noqa: E402
from spa_torch.validate import module_outputs, relative_error  # noqa: E402

import spa_core  # noqa: E402
from spa_core.errors import FrameworkError, InvalidOptionError  # noqa: E402
from spa_core.oracle import compare_outputs  # noqa: E402
from spa_core.runtime import random_inputs, run_model  # noqa: E402
from spa_core.testing import assert_oracle  # noqa: E402

torch.set_num_threads(2)

# model -> whether its config can express fewer heads of the same width
HF_MODELS = {"bert": False, "distilbert": False, "gpt2": False, "vit": True, "llama-gqa": True}
DECODERS = ["gpt2", "llama-gqa"]
LAYER1_ATTENTION = [f"model.model.layers.1.self_attn.{p}_proj.weight" for p in "qkvo"]


@functools.cache
def pruned(name: str) -> tuple[torch.nn.Module, TransformerPruneResult]:
    """(original, result of pruning half the heads and MLP units by L1), once per session."""
    model = tiny.build(name)
    return model, prune_transformer(model, ratio=0.5)


@functools.cache
def uneven_llama() -> tuple[torch.nn.Module, TransformerPruneResult]:
    """LLaMA with layer 1's attention left whole: layers keep different numbers of heads."""
    model = tiny.build("llama-gqa")
    return model, prune_transformer(model, ratio=0.5, ignore=LAYER1_ATTENTION)


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    return module_outputs(ExportWrapper(model), (x,))[0]


def _changed(result: spa_core.api.PruneResult) -> float:
    """How far the pruned ONNX is from the unpruned original (must be far: pruning did something)."""
    graph = result.analysis.graph
    feeds = random_inputs(graph.model, graph.shapes, graph.dtypes, seed=1)
    return compare_outputs(graph.model, result.onnx, feeds)


# ---------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", list(HF_MODELS))
def test_oracle_holds_and_native_model_equals_onnx(name):
    model, out = pruned(name)
    assert_oracle(out.result, rtol=1e-4)
    assert _changed(out.result) > 1e-2
    assert "auto_ignored" not in out.result.extras  # no layer was left whole behind our back
    report = out.result.report
    assert report.params_after < report.params_before and report.macs_after < report.macs_before
    x = example_inputs(model)
    expected = list(run_model(out.result.onnx, {"input": x.numpy()}).values())
    assert relative_error([_outputs(out.model, x)], expected) < 1e-4
    # another input than the one exported with: no width or length was baked in
    x2 = example_inputs(model, batch=2, length=5) if x.dtype == torch.long else tiny.image_input(2, seed=3)
    assert _outputs(out.model, x2).shape[0] == 2


@pytest.mark.parametrize("name", list(HF_MODELS))
def test_heads_and_mlp_units_halved_in_every_layer(name):
    model, out = pruned(name)
    before, after = attention_layers(model), attention_layers(out.model)
    assert before.keys() == after.keys() and len(after) == tiny.LAYERS
    for layer, heads in after.items():
        assert heads.query == before[layer].query // 2
        assert heads.key_value == before[layer].key_value // 2
        assert heads.head_dim == before[layer].head_dim
    assert set(mlp_widths(out.model).values()) == {tiny.MLP // 2}
    assert model.config.num_attention_heads == tiny.HEADS  # the original is left alone


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize("name", list(HF_MODELS))
def test_config_describes_the_weights(name):
    model, out = pruned(name)
    config = out.model.config
    assert out.fit.exact is HF_MODELS[name]
    with torch.device("meta"):
        rebuilt = pruned_class(type(model))(config)
    shapes = {n: tuple(t.shape) for n, t in rebuilt.state_dict().items()}
    assert shapes == {n: tuple(t.shape) for n, t in out.model.state_dict().items()}
    if out.fit.exact:
        assert shape_mismatches(out.model, config) == {}
        assert config.num_attention_heads == tiny.HEADS // 2
        assert not hasattr(config, OVERRIDES_KEY)
    else:  # only the attention shapes are left to the overrides, and the notes say why
        assert set(out.fit.overrides) == set(shape_mismatches(out.model, config))
        assert all(".attn" in n or ".attention." in n for n in out.fit.overrides)
        assert any("derives the head width" in note for note in out.fit.notes)
        assert config.num_attention_heads == tiny.HEADS
    width = {"gpt2": "n_inner", "distilbert": "hidden_dim"}.get(name, "intermediate_size")
    assert getattr(config, width) == tiny.MLP // 2


def test_gqa_config_and_module_attributes():
    _, out = pruned("llama-gqa")
    config = out.model.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 1, 16)
    for layer in out.model.model.layers:
        assert layer.self_attn.config is config  # even layers: the model's config says it all
        assert layer.self_attn.num_key_value_groups == 2
        assert layer.self_attn.k_proj.out_features == 16 and layer.self_attn.q_proj.out_features == 32


def test_gqa_query_heads_follow_their_key_value_head():
    model, out = pruned("llama-gqa")
    dim, group = 16, 2
    for i in range(tiny.LAYERS):
        plan = out.result.plan.parameters
        q = plan[f"model.model.layers.{i}.self_attn.q_proj.weight"].kept[0]
        k = plan[f"model.model.layers.{i}.self_attn.k_proj.weight"].kept[0]
        v = plan[f"model.model.layers.{i}.self_attn.v_proj.weight"].kept[0]
        assert k == v and len(k) == dim
        kv_heads = sorted({r // dim for r in k})
        assert k == [h * dim + d for h in kv_heads for d in range(dim)]
        assert q == [(h * group + j) * dim + d for h in kv_heads for j in range(group) for d in range(dim)]
        o = plan[f"model.model.layers.{i}.self_attn.o_proj.weight"].kept[1]
        assert o == q
        # the weights moved with their heads
        orig = model.model.layers[i].self_attn.q_proj.weight
        assert torch.equal(out.model.model.layers[i].self_attn.q_proj.weight, orig[q])


# ---------------------------------------------------------------------------- save / load / generate
@pytest.mark.parametrize("name", list(HF_MODELS))
def test_save_pretrained_reloads_with_equal_outputs(name, tmp_path):
    model, out = pruned(name)
    out.model.save_pretrained(tmp_path)
    x = example_inputs(model, batch=2, length=6) if "pixel" not in out.model.main_input_name else tiny.image_input(2)
    if out.fit.exact:
        again = type(model).from_pretrained(tmp_path)
        assert type(again) is type(model)
    else:
        with pytest.raises(Exception, match="(?i)size|shape"):
            type(model).from_pretrained(tmp_path)  # refuses rather than loading wrong shapes
        again = load_pruned(tmp_path)
        assert isinstance(again, type(model))
    np.testing.assert_allclose(_outputs(again.eval(), x), _outputs(out.model, x), rtol=1e-5, atol=1e-6)
    assert load_pruned(tmp_path).config.to_dict() == again.config.to_dict()


def _greedy_by_full_forward(model: torch.nn.Module, ids: torch.Tensor, steps: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, use_cache=False).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


@pytest.mark.parametrize("name", DECODERS)
def test_generate_runs_after_reload(name, tmp_path):
    _, out = pruned(name)
    out.model.save_pretrained(tmp_path)
    again = load_pruned(tmp_path).eval()
    ids = torch.tensor([[3, 14, 15, 9, 26]])
    with torch.no_grad():
        generated = again.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                   min_new_tokens=6)
    assert generated.shape == (1, 11)
    # the key/value cache (pruned head counts) gives what full forward passes give
    assert torch.equal(generated, _greedy_by_full_forward(out.model, ids, 6))


def test_require_config_for_derived_head_width():
    model = tiny.build("bert")
    with pytest.raises(FrameworkError, match="derives the head width"):
        prune_transformer(model, ratio=0.5, require_config=True)


@pytest.mark.parametrize("options", [
    {"require_config": True, "global_ranking": True},  # uneven layers: no config says that
    {"heads": False, "mlp": False},  # nothing left to prune
    {"hidden": True, "heads": False},  # ignoring the projections would freeze the width too
])
def test_contradictory_options_are_refused_before_any_work(options):
    with pytest.raises(InvalidOptionError):
        prune_transformer(tiny.build("llama-gqa"), ratio=0.5, **options)


@pytest.mark.slow
def test_bert_mlp_only_is_a_plain_transformers_model(tmp_path):
    model = tiny.build("bert")
    out = prune_transformer(model, ratio=0.5, heads=False, require_config=True)
    assert_oracle(out.result)
    assert out.fit.exact and out.model.config.intermediate_size == tiny.MLP // 2
    out.model.save_pretrained(tmp_path)
    again = transformers.BertForMaskedLM.from_pretrained(tmp_path)
    x = example_inputs(model)
    np.testing.assert_allclose(_outputs(again, x), _outputs(out.model, x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- uneven heads
def test_uneven_heads_need_and_get_the_explicit_loader(tmp_path):
    _, out = uneven_llama()
    assert_oracle(out.result)
    heads = [(h.query, h.key_value) for h in attention_layers(out.model).values()]
    assert heads == [(2, 1), (4, 2)]
    # a forward that reads head counts from the config (Phi-3) sees its layer's own
    first, second = (layer.self_attn.config for layer in out.model.model.layers)
    assert (first.num_attention_heads, first.num_key_value_heads) == (2, 1)
    assert second is out.model.config and second.num_attention_heads == 4
    assert not out.fit.exact
    assert any("different numbers of heads" in note for note in out.fit.notes)
    assert out.model.config.intermediate_size == tiny.MLP // 2  # what is uniform still goes in the config
    out.model.save_pretrained(tmp_path)
    with pytest.raises(Exception, match="(?i)size|shape"):
        transformers.LlamaForCausalLM.from_pretrained(tmp_path)
    again = load_pruned(tmp_path).eval()
    assert [(h.query, h.key_value) for h in attention_layers(again).values()] == heads
    ids = torch.tensor([[1, 2, 3, 4]])
    np.testing.assert_allclose(_outputs(again, ids), _outputs(out.model, ids), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        generated = again.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                                   min_new_tokens=4)
    assert torch.equal(generated, _greedy_by_full_forward(out.model, ids, 4))


# ---------------------------------------------------------------------------- timm
@functools.cache
def pruned_timm(name: str) -> tuple[torch.nn.Module, spa_core.api.PruneResult]:
    model = tiny.build(name)
    return model, spa_core.prune(model, tiny.image_input(), ratio=0.5, criterion="l1")


# Swin's export is the slowest of all (dynamic window shapes): in the slow tier
TIMM_MODELS = [pytest.param(n, marks=pytest.mark.slow) if n == "timm-swin" else n for n in tiny.TIMM]


@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_transformers_pruned_exactly(name):
    model, result = pruned_timm(name)
    assert_oracle(result)
    assert "auto_ignored" not in result.extras
    assert _changed(result) > 1e-2
    x = tiny.image_input(2, seed=5)
    with torch.no_grad():
        assert result.model(x).shape == model(x).shape == (2, 10)
    hidden = [m.fc1.out_features for m in result.model.modules() if hasattr(m, "fc1")]
    original = [m.fc1.out_features for m in model.modules() if hasattr(m, "fc1")]
    assert hidden == [h // 2 for h in original]
    # whole heads of the fused qkv projection (and Swin's per-head position bias table)
    before, after = attention_layers(model), attention_layers(result.model)
    assert before.keys() == after.keys() and len(after) >= 2
    for layer, heads in after.items():
        assert heads == type(heads)(before[layer].query // 2, before[layer].key_value // 2, before[layer].head_dim)
        module = result.model.get_submodule(layer)
        assert module.num_heads == heads.query
        table = getattr(module, "relative_position_bias_table", None)
        assert table is None or table.shape[1] == heads.query


# ---------------------------------------------------------------------------- more families
@pytest.mark.slow
@pytest.mark.parametrize("name", list(tiny.EXTRA))
def test_more_families_pruned_exactly_and_reload(name, tmp_path):
    model = tiny.build(name)
    out = prune_transformer(model, ratio=0.5)
    assert_oracle(out.result)
    assert _changed(out.result) > 1e-2
    assert set(mlp_widths(out.model).values()) == {tiny.MLP // 2}
    heads = {(h.query, h.key_value) for h in attention_layers(out.model).values()}
    assert heads == {(h.query // 2, h.key_value // 2) for h in attention_layers(model).values()}
    assert "auto_ignored" not in out.result.extras  # nothing was left whole behind our back
    out.model.save_pretrained(tmp_path)
    again = (type(model).from_pretrained(tmp_path) if out.fit.exact else load_pruned(tmp_path)).eval()
    ids = example_inputs(model, batch=2, length=6)
    np.testing.assert_allclose(_outputs(again, ids), _outputs(out.model, ids), rtol=1e-5, atol=1e-6)
    if hasattr(again, "generate") and "CausalLM" in type(again).__name__:
        with torch.no_grad():
            got = again.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), max_new_tokens=4,
                                 min_new_tokens=4, do_sample=False)
        assert torch.equal(got, _greedy_by_full_forward(out.model, ids[:1], 4))


# ---------------------------------------------------------------------------- embedding width
@functools.cache
def hidden_llama() -> tuple[torch.nn.Module, TransformerPruneResult]:
    """LLaMA with heads, MLP units and the embedding width (residual stream) halved."""
    model = tiny.build("llama-gqa")
    return model, prune_transformer(model, ratio=0.5, hidden=True)


def test_rmsnorm_sum_form_is_the_same_function():
    model = tiny.build("llama-gqa")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    before = _outputs(model, ids)
    with sum_form(model) as names:
        assert len(names) == 2 * tiny.LAYERS + 1  # two per layer and the final norm
        during = _outputs(model, ids)
    np.testing.assert_allclose(during, before, rtol=1e-5, atol=1e-6)
    assert not any("forward" in vars(m) for m in model.modules())  # switched back


def test_embedding_width_pruned_exactly_and_config_says_so(tmp_path):
    model, out = hidden_llama()
    assert_oracle(out.result)
    assert _changed(out.result) > 1e-2
    half = tiny.HIDDEN // 2
    assert out.model.get_input_embeddings().weight.shape == (tiny.VOCAB, half)
    assert out.model.lm_head.weight.shape == (tiny.VOCAB, half)
    config = out.model.config
    assert out.fit.exact and (config.hidden_size, config.head_dim) == (half, 16)
    # eps' = eps * D / D' and weight' = weight * sqrt(D / D') keep RMSNorm exact
    assert config.rms_norm_eps == pytest.approx(model.config.rms_norm_eps * 2)
    kept = out.result.plan.parameters["model.model.norm.weight"].kept[0]
    torch.testing.assert_close(out.model.model.norm.weight, model.model.norm.weight[kept] * 2**0.5)
    x = example_inputs(model)
    expected = list(run_model(out.result.onnx, {"input": x.numpy()}).values())
    assert relative_error([_outputs(out.model, x)], expected) < 1e-4
    out.model.save_pretrained(tmp_path)
    again = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    ids = example_inputs(model, batch=2, length=6)
    np.testing.assert_allclose(_outputs(again, ids), _outputs(out.model, ids), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        got = again.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), max_new_tokens=4, min_new_tokens=4,
                             do_sample=False)
    assert torch.equal(got, _greedy_by_full_forward(out.model, ids[:1], 4))


def test_embedding_width_refused_for_layernorm_models():
    with pytest.raises(InvalidOptionError, match="LayerNorm"):
        prune_transformer(tiny.build("bert"), ratio=0.5, hidden=True)


@pytest.mark.slow
def test_embedding_width_with_per_head_norms_needs_the_loader(tmp_path):
    """Qwen3's q/k norms (over the head width) keep their epsilon; one config field cannot say both."""
    model = tiny.build("qwen3-gqa")
    out = prune_transformer(model, ratio=0.5, hidden=True)
    assert_oracle(out.result)
    assert not out.fit.exact and not out.fit.overrides
    assert set(out.fit.epsilons) == {f"model.layers.{i}.self_attn.{n}_norm" for i in range(tiny.LAYERS) for n in "qk"}
    out.model.save_pretrained(tmp_path)
    again = load_pruned(tmp_path).eval()
    assert again.model.layers[0].self_attn.q_norm.variance_epsilon == model.config.rms_norm_eps
    ids = example_inputs(model, batch=2, length=6)
    np.testing.assert_allclose(_outputs(again, ids), _outputs(out.model, ids), rtol=1e-5, atol=1e-6)
