"""Fast checks of the JAX adapter's pieces that need no export: probe values, slicing, linen solving."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import linen as nn  # noqa: E402
from spa_jax.linen_rebuild import solve_module  # noqa: E402
from spa_jax.probe import ProbeDecoder, probe_values  # noqa: E402
from spa_jax.slicing import native_kept  # noqa: E402

from spa_core.errors import FrameworkError  # noqa: E402
from spa_core.plan import ParameterPlan, Plan  # noqa: E402
from spa_core.types import ExportedModel  # noqa: E402


def leaves() -> dict[str, np.ndarray]:
    return {
        "conv/kernel": np.ones((3, 3, 2, 4), np.float32),  # HWIO, all equal on purpose
        "conv/bias": np.zeros((4,), np.float32),
        "attn/kernel": np.ones((4, 2, 3), np.float32),  # (in, heads, head_dim)
        "step": np.zeros((), np.int32),
    }


def test_probe_values_are_unique_and_decode_through_layouts():
    values = probe_values(leaves())
    floats = np.concatenate([v.reshape(-1) for v in values.values() if v.dtype == np.float32])
    assert len(np.unique(floats)) == floats.size
    assert values["step"].dtype == np.int32
    decoder = ProbeDecoder(leaves())
    oihw = decoder.decode(values["conv/kernel"].transpose(3, 2, 0, 1))
    assert (oihw.path, oihw.axes) == ("conv/kernel", (3, 2, 0, 1))
    merged = decoder.decode(values["attn/kernel"].reshape(4, 6))
    assert (merged.path, merged.axes) == ("attn/kernel", (0, None))
    assert decoder.decode(values["conv/kernel"][..., :2]) is None  # part of a leaf
    assert decoder.decode(np.array([1.5, 2.0], np.float32)) is None  # not a probe


def test_probe_rejects_low_precision():
    with pytest.raises(FrameworkError, match="float32"):
        probe_values({"w": np.ones(3, np.float16)})


def exported_for(names: dict[str, np.ndarray]) -> ExportedModel:
    decoder = ProbeDecoder(leaves())
    maps = {name: decoder.decode(arr) for name, arr in names.items()}
    return ExportedModel(onnx=None, framework="jax", extras={"leaf_maps": maps, "derived": ["folded"]})


def test_native_kept_translates_whole_heads_and_rejects_ragged_sets():
    values = probe_values(leaves())
    exported = exported_for({"k2d": values["attn/kernel"].reshape(4, 6)})
    plan = Plan(parameters={"k2d": ParameterPlan([4, 6], {1: [3, 4, 5]})})  # head 1 kept
    assert native_kept(plan, exported) == {"attn/kernel": {1: [1]}}
    ragged = Plan(parameters={"k2d": ParameterPlan([4, 6], {1: [0, 4]})})
    with pytest.raises(FrameworkError, match="sub-block"):
        native_kept(ragged, exported)
    folded = Plan(parameters={"folded": ParameterPlan([4], {0: [0]})})
    with pytest.raises(FrameworkError, match="computed from several"):
        native_kept(folded, exported)


def test_native_kept_requires_tied_uses_to_agree():
    values = probe_values(leaves())
    exported = exported_for({"a": values["conv/bias"], "b": values["conv/bias"].copy()})
    plan = Plan(parameters={"a": ParameterPlan([4], {0: [0, 1]})})
    with pytest.raises(FrameworkError, match="different channels"):
        native_kept(plan, exported)


class Widths(nn.Module):
    widths: tuple = (8, 6)
    heads: int = 2
    qkv: int = 8

    @nn.compact
    def __call__(self, x):
        for w in self.widths:
            x = nn.relu(nn.Dense(w)(x))
        x = nn.MultiHeadDotProductAttention(num_heads=self.heads, qkv_features=self.qkv)(x)
        return nn.Dense(3)(x)


def test_linen_solver_finds_tuple_widths_and_heads():
    x = jnp.ones((1, 5, 4))
    module = Widths()
    shapes = jax.tree_util.tree_map(lambda a: a.shape, module.init(jax.random.key(0), x))
    pruned = module.clone(widths=(4, 6), heads=1, qkv=4)
    target_tree = jax.eval_shape(lambda v: pruned.init(jax.random.key(0), v), x)
    from spa_jax.views import path_string

    flat, _ = jax.tree_util.tree_flatten_with_path(target_tree)
    target = {path_string(p): tuple(a.shape) for p, a in flat}
    assert target != {path_string(p): s for p, s in jax.tree_util.tree_flatten_with_path(shapes)[0]}
    got, notes = solve_module(module, target, [jax.ShapeDtypeStruct(x.shape, x.dtype)], {})
    assert notes == []
    assert (tuple(got.widths), got.heads, got.qkv) == ((4, 6), 1, 4)
