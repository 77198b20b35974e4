"""The JAX/Flax adapter against real Flax models, jax2onnx and onnxruntime.

Each model is built, pruned once per module (``spa_core.prune``) and reused by the
checks: the pruned Flax model equals the pruned ONNX in onnxruntime, the engine's oracle
holds, an optax step trains the pruned model, ratio 0 changes nothing. The export's
parameter binding and ``apply_plan`` are also checked on their own with a hand-made plan.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

flax = pytest.importorskip("flax")
pytest.importorskip("jax2onnx")
optax = pytest.importorskip("optax")

import onnxruntime as ort  # noqa: E402
from flax import nnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from spa_jax import LinenModel, zoo  # noqa: E402
from spa_jax.plugin import apply_plan, spa_detect_framework, spa_export, spa_save_model  # noqa: E402

import spa_core  # noqa: E402
from spa_core.errors import FrameworkError, InvalidOptionError  # noqa: E402
from spa_core.plan import ParameterPlan, Plan  # noqa: E402
from spa_core.testing import assert_oracle  # noqa: E402

PRUNED = ["nnx_resnet", "nnx_mobilenet", "nnx_transformer", "linen_resnet", "linen_mobilenet"]
_CACHE: dict[str, tuple] = {}


def run_onnx(model: onnx.ModelProto, x: jax.Array) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.asarray(x)})[0]


def pruned(name: str):
    """(original model, input, PruneResult) at ratio 0.5, computed once per session."""
    if name not in _CACHE:
        model, x = zoo.MODELS[name]()
        _CACHE[name] = (model, x, spa_core.prune(model, x, ratio=0.5))
    return _CACHE[name]


def leaf_shapes(model) -> dict[str, tuple[int, ...]]:
    from spa_jax.views import make_view

    return {p: v.shape for p, v in make_view(model).leaves().items()}


# ----------------------------------------------------------------- export binding
def test_detect_framework():
    model, _ = zoo.MODELS["nnx_mobilenet"]()
    assert spa_detect_framework(model) == "jax"
    assert spa_detect_framework((zoo.LinenResNet(), {"params": {}})) == "jax"
    assert spa_detect_framework(object()) is None


def test_binding_at_init_values_uses_graph_position_not_value():
    """All-ones BN scales and zero biases at init are still bound to the right leaf."""
    model, x = zoo.MODELS["nnx_resnet"](init_values=True)
    exported = spa_export(model, x, "jax", {})
    by_path = {b.native_name: (name, b) for name, b in exported.parameter_map.items()}
    assert set(by_path) == set(leaf_shapes(model))  # every leaf bound exactly once
    name, binding = by_path["b1/c1/conv/kernel"]
    assert binding.axes == (3, 2, 0, 1)
    bn_inputs = {}
    for node in exported.onnx.graph.node:
        if node.op_type == "BatchNormalization":
            bn_inputs[node.input[1]] = list(node.input[1:])
    for prefix in ("stem/bn", "b1/c1/bn", "b2/c2/bn", "b2/down/bn"):
        scale = by_path[f"{prefix}/scale"][0]
        assert bn_inputs[scale] == [by_path[f"{prefix}/{k}"][0] for k in ("scale", "bias", "mean", "var")]


def test_attention_kernels_bind_through_reshape():
    model, x = zoo.MODELS["nnx_transformer"]()
    exported = spa_export(model, x, "jax", {})
    by_path = {b.native_name: b for b in exported.parameter_map.values()}
    assert by_path["layers/0/attn/query/kernel"].axes == (0, None)  # (in, H, D) -> (in, H*D)
    assert by_path["layers/0/fc1/kernel"].axes == (0, 1)


def test_hand_made_plan_matches_sliced_onnx():
    """Keep every other channel of one conv; compare with numpy-sliced initializers."""
    model, x = zoo.MODELS["nnx_resnet"]()
    exported = spa_export(model, x, "jax", {})
    name_of = {b.native_name: n for n, b in exported.parameter_map.items()}
    kept = list(range(0, 8, 2))
    axes = {f"b1/c1/bn/{k}": 0 for k in ("scale", "bias", "mean", "var")}
    axes.update({"b1/c1/conv/kernel": 0, "b1/c2/conv/kernel": 1})  # ONNX out / in axis
    plan, expected = Plan(), onnx.ModelProto()
    expected.CopyFrom(exported.onnx)
    for path, axis in axes.items():
        tensor = next(t for t in expected.graph.initializer if t.name == name_of[path])
        plan.parameters[tensor.name] = ParameterPlan(list(tensor.dims), {axis: kept})
        tensor.CopyFrom(numpy_helper.from_array(np.take(numpy_helper.to_array(tensor), kept, axis), tensor.name))
    out = apply_plan(model, plan, exported, expected, {})
    assert (out.b1.c1.conv.out_features, out.b1.c1.bn.num_features, out.b1.c2.conv.in_features) == (4, 4, 4)
    assert model.b1.c1.conv.out_features == 8  # the original is untouched
    np.testing.assert_allclose(np.asarray(out(x)), run_onnx(expected, x), atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------- engine round trip
@pytest.mark.parametrize("name", PRUNED)
def test_pruned_flax_equals_pruned_onnx(name):
    model, x, result = pruned(name)
    before, after = leaf_shapes(model), leaf_shapes(result.model)
    assert sum(np.prod(s) for s in after.values()) < sum(np.prod(s) for s in before.values())
    np.testing.assert_allclose(np.asarray(result.model(x)), run_onnx(result.onnx, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", PRUNED)
def test_oracle_holds(name):
    assert_oracle(pruned(name)[2], rtol=1e-4)


def test_nnx_widths_updated():
    _, _, res = pruned("nnx_mobilenet")
    dw = res.model.b1.dw.conv
    assert dw.in_features == dw.out_features == dw.feature_group_count == dw.kernel.shape[-1]
    assert dw.in_features < 24
    _, _, res = pruned("nnx_transformer")
    attn = res.model.layers[0].attn
    assert attn.num_heads == attn.query.kernel.shape[1] < 4
    assert attn.qkv_features == attn.num_heads * attn.head_dim
    assert res.model.layers[0].fc1.out_features == res.model.layers[0].fc2.in_features < 32


def test_linen_module_recreated():
    _, _, res = pruned("linen_resnet")
    assert isinstance(res.model, LinenModel) and res.model.notes == []
    assert tuple(res.model.module.widths) != (8, 16)


def test_linen_hardcoded_width_gives_variables_and_note():
    model, x = zoo.MODELS["linen_hardcoded"]()
    res = spa_core.prune(model, x, ratio=0.5)
    assert res.model.module is None
    assert "hard-coded" in res.model.notes[0] and "Conv_0/kernel" in res.model.notes[0]
    assert res.model.variables["params"]["Conv_0"]["kernel"].shape[-1] < 12
    with pytest.raises(FrameworkError):
        res.model(x)


@pytest.mark.parametrize("name", ["nnx_resnet", "nnx_transformer", "linen_resnet"])
def test_optax_step_on_pruned_model(name):
    _, x, res = pruned(name)
    labels = jnp.arange(x.shape[0]) % 5
    tx = optax.sgd(0.1)

    def loss_of(logits):
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    if isinstance(res.model, LinenModel):
        lin = res.model
        params = lin.variables["params"]
        rest = {k: v for k, v in lin.variables.items() if k != "params"}

        def loss_fn(p):
            return loss_of(lin.module.apply({"params": p, **rest}, x, **lin.apply_kwargs))

        loss0, grads = jax.value_and_grad(loss_fn)(params)
        updates, _ = tx.update(grads, tx.init(params), params)
        new_params = optax.apply_updates(params, updates)
        loss1 = loss_fn(new_params)
        changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params, new_params))
    else:
        model = nnx.clone(res.model)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        before = nnx.clone(nnx.state(model, nnx.Param))
        loss0, grads = nnx.value_and_grad(lambda m: loss_of(m(x)))(model)
        optimizer.update(model, grads)
        loss1 = loss_of(model(x))
        changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, nnx.state(model, nnx.Param)))
    assert np.isfinite(float(loss0)) and float(loss1) != float(loss0)
    assert any(changed)


@pytest.mark.parametrize("name", ["nnx_mobilenet", "linen_resnet"])
def test_ratio_zero_is_exact(name):
    model, x = zoo.MODELS[name]()
    res = spa_core.prune(model, x, ratio=0.0)
    assert leaf_shapes(res.model) == leaf_shapes(model)
    np.testing.assert_array_equal(np.asarray(res.model(x)), np.asarray(model(x)))


# ----------------------------------------------------------------- errors and saving
def test_errors_are_actionable():
    model, x = zoo.MODELS["nnx_mobilenet"]()
    with pytest.raises(InvalidOptionError, match="opset"):
        spa_export(model, x, "jax", {"opset": 17})
    with pytest.raises(FrameworkError, match="LinenModel"):
        spa_core.prune(zoo.LinenResNet(), x, ratio=0.5, framework="jax")
    half = nnx.clone(model)
    half.head.kernel.set_value(half.head.kernel.get_value().astype(jnp.bfloat16))
    with pytest.raises(FrameworkError, match="float32"):
        spa_export(half, x, "jax", {})


def test_save_msgpack(tmp_path):
    _, _, res = pruned("nnx_mobilenet")
    path = tmp_path / "pruned.msgpack"
    assert spa_save_model(res.model, str(path), "jax", {}) is True
    restored = flax.serialization.msgpack_restore(path.read_bytes())
    assert restored["head"]["kernel"].shape == res.model.head.kernel.shape


def test_prune_with_target_torch():
    """A Flax model pruned into a PyTorch module (through the pruned ONNX and onnx2torch)."""
    torch = pytest.importorskip("torch")
    if importlib.util.find_spec("onnx2torch") is None:  # imported by spa_keras.cross (torchvision stand-in)
        pytest.skip("onnx2torch is not installed")
    model, x = zoo.MODELS["nnx_resnet"]()
    res = spa_core.prune(model, x, ratio=0.5, target="torch")
    assert isinstance(res.model, torch.nn.Module) and not res.model.training  # BatchNorm: running stats
    with torch.no_grad():
        got = res.model(torch.from_numpy(np.asarray(x))).numpy()
    np.testing.assert_allclose(got, run_onnx(res.onnx, x), atol=1e-4, rtol=1e-4)
