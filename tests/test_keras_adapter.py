"""The Keras adapter against real TensorFlow/Keras, tf2onnx, onnxruntime and the engine.

Models are small, built in code with random weights (BN statistics randomised, see
``spa_keras.zoo``). Every test compares numbers: the pruned Keras model against the
pruned ONNX model, the engine's oracle, weights before/after.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")

from spa_keras import plugin, zoo  # noqa: E402
from spa_keras.apply import apply_plan  # noqa: E402
from spa_keras.export import export  # noqa: E402

import spa_core  # noqa: E402
from spa_core.errors import FrameworkError, InvalidModelError, InvalidOptionError  # noqa: E402
from spa_core.plan import ParameterPlan, Plan  # noqa: E402
from spa_core.runtime import run_model  # noqa: E402
from spa_core.testing import assert_oracle  # noqa: E402

MAIN = ["resnet", "mobilenet_v2", "densenet"]
MORE = ["vgg_sequential", "separable_transpose"]


def onnx_output(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return next(iter(run_model(proto, {proto.graph.input[0].name: x}).values()))


def keras_output(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


@pytest.fixture(scope="module")
def pruned():
    """``pruned(name) -> (model, x, PruneResult)`` at ratio 0.3, built once per module."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            model, x = zoo.ZOO[name]()
            cache[name] = (model, x, spa_core.prune(model, x, ratio=0.3))
        return cache[name]

    return get


# ---------------------------------------------------------------- pruning through the engine
@pytest.mark.parametrize("name", MAIN + MORE)
def test_pruned_keras_equals_pruned_onnx(pruned, name):
    model, x, res = pruned(name)
    assert res.model.count_params() < 0.9 * model.count_params()
    np.testing.assert_allclose(keras_output(res.model, x), onnx_output(res.onnx, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MAIN + MORE)
def test_oracle_holds(pruned, name):
    assert assert_oracle(pruned(name)[2], rtol=1e-4) <= 1e-4


@pytest.mark.parametrize("name", MAIN)
def test_pruned_model_saves_reloads_and_trains(pruned, name, tmp_path):
    _, x, res = pruned(name)
    path = tmp_path / f"{name}.keras"
    assert plugin.spa_save_model(model=res.model, path=str(path), framework="keras", options={})
    framework, loaded = plugin.spa_load_model(path=str(path), framework=None, options={})
    assert framework == "keras"
    np.testing.assert_allclose(keras_output(loaded, x), keras_output(res.model, x), rtol=1e-6, atol=1e-6)
    loaded.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in loaded.get_weights()]
    history = loaded.fit(np.repeat(x, 4, axis=0), np.arange(4) % 10, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, loaded.get_weights()))


@pytest.mark.parametrize("name", MAIN)
def test_ratio_zero_keeps_every_weight_and_output(name):
    model, x = zoo.ZOO[name]()
    res = spa_core.prune(model, x, ratio=0.0)
    assert res.model.count_params() == model.count_params()
    for a, b in zip(model.get_weights(), res.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(keras_output(res.model, x), keras_output(model, x), rtol=0, atol=1e-6)


def test_nested_sequential_and_two_inputs():
    """A Sequential block inside a functional model whose input width is pruned; two inputs."""
    L = keras.layers
    block = keras.Sequential(
        [keras.Input((8, 8, 16)), L.Conv2D(16, 3, padding="same", name="bc"), L.BatchNormalization(name="bbn"), L.ReLU()],
        name="block",
    )
    a, b = keras.Input((8, 8, 3), name="a"), keras.Input((8, 8, 3), name="b")
    x = L.Add()([L.Conv2D(16, 3, padding="same", name="ca")(a), L.Conv2D(16, 3, padding="same", name="cb")(b)])
    x = L.Conv2D(8, 1, name="c3")(block(x))
    model = zoo.randomize(keras.Model([a, b], L.Dense(3, name="fc")(L.GlobalAveragePooling2D()(x))))
    xs = [np.random.default_rng(i).standard_normal((1, 8, 8, 3)).astype(np.float32) for i in range(2)]
    res = spa_core.prune(model, xs, ratio=0.5)
    assert res.model.get_layer("block").get_layer("bc").get_config()["filters"] == 8
    feeds = {i.name: v for i, v in zip(res.onnx.graph.input, xs)}
    expected = next(iter(run_model(res.onnx, feeds).values()))
    np.testing.assert_allclose(np.asarray(res.model(xs)), expected, rtol=1e-4, atol=1e-5)
    assert_oracle(res, rtol=1e-4)


def test_attention_block_prunes_heads_and_mlp():
    """Whole MultiHeadAttention heads (q, k, v and output together), Embedding and Dense widths."""
    model, x = zoo.attention(norm=False)
    res = spa_core.prune(model, x, ratio=0.3)
    mha = res.model.get_layer("mha")
    assert mha.get_config()["num_heads"] == 3
    width = res.model.get_layer("embed").get_config()["output_dim"]
    assert width < 32
    assert mha.get_weights()[0].shape == (width, 3, 8)  # query kernel (in, heads, key_dim)
    assert res.model.get_layer("mlp1").get_config()["units"] < 64
    np.testing.assert_allclose(keras_output(res.model, x), onnx_output(res.onnx, x), rtol=1e-4, atol=1e-5)
    assert_oracle(res, rtol=1e-4)


def test_layer_normalization_model_matches_its_onnx():
    model, x = zoo.attention()
    res = spa_core.prune(model, x, ratio=0.3)
    np.testing.assert_allclose(keras_output(res.model, x), onnx_output(res.onnx, x), rtol=1e-4, atol=1e-5)


def test_layer_normalization_is_a_barrier_on_its_channels():
    """tf2onnx writes LayerNormalization as means over the channel axis: that stream stays whole."""
    model, x = zoo.attention()
    res = spa_core.prune(model, x, ratio=0.3)
    assert res.model.get_layer("embed").get_config()["output_dim"] == 32
    assert res.model.get_layer("ln1").get_weights()[0].shape == (32,)
    assert res.model.get_layer("mha").get_config()["num_heads"] < 4
    assert res.model.get_layer("mlp1").get_config()["units"] < 64
    assert_oracle(res, rtol=1e-4)


def test_flatten_head():
    """NHWC Flatten: channels are the inner axis, so the Dense input keeps H*W blocks of them."""
    model, x = zoo.flatten_head()
    res = spa_core.prune(model, x, ratio=0.3)
    filters = res.model.get_layer("c2_conv").get_config()["filters"]
    assert filters < 16
    assert res.model.get_layer("fc1").get_weights()[0].shape[0] == 4 * 4 * filters
    np.testing.assert_allclose(keras_output(res.model, x), onnx_output(res.onnx, x), rtol=1e-4, atol=1e-5)
    assert_oracle(res, rtol=1e-4)


def test_cli_prunes_a_keras_file(tmp_path):
    """``spa prune model.keras -o pruned.keras`` writes the pruned model and its ONNX beside it."""
    from spa_core.cli import main

    model, x = zoo.resnet()
    src, out = tmp_path / "model.keras", tmp_path / "pruned.keras"
    model.save(str(src))
    assert main(["prune", str(src), "-o", str(out), "--ratio", "0.3", "--quiet"]) == 0
    loaded = keras.saving.load_model(str(out))
    assert loaded.count_params() < 0.9 * model.count_params()
    pruned_onnx = onnx.load(str(tmp_path / "pruned.onnx"))
    np.testing.assert_allclose(keras_output(loaded, x), onnx_output(pruned_onnx, x), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- export and mapping
def test_export_computes_the_model_and_maps_every_weight():
    model, x = zoo.resnet()
    ex = export(model, x, {})
    np.testing.assert_allclose(onnx_output(ex.onnx, x), keras_output(model, x), rtol=1e-4, atol=1e-5)
    assert ex.input_shapes == {"image": x.shape}
    used = {u.ref.path for s in ex.extras["sources"].values() for t in (s.term, s.scale) if t for u in t.uses}
    assert used == {w.path for w in model.weights}
    binding = ex.parameter_map["stem_conv/kernel*stem_bn"]
    assert binding.native_name == "stem_conv/kernel" and binding.axes == (3, 2, 0, 1)
    assert binding.transform == "bn_folded:stem_bn"
    assert ex.extras["folded_bn"]["stem_bn"] == "stem_conv"
    assert ex.parameter_map["logits/kernel"].axes == (0, 1)  # Dense (in, out) stays for MatMul


@pytest.mark.parametrize("name", ["resnet", "mobilenet_v2"])
def test_large_model_conversion_prunes_like_the_default(name):
    """tf2onnx's large-model path (no Grappler, constants kept out of the TensorFlow graph:
    taken automatically above ``LARGE_MODEL_BYTES``) maps every weight and prunes to the
    same widths, with the oracle and Keras == ONNX holding."""
    model, x = zoo.ZOO[name]()
    large = spa_core.prune(model, x, ratio=0.3, export_options={"large_model": True})
    default = spa_core.prune(model, x, ratio=0.3, export_options={"large_model": False})
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in large.onnx.graph.initializer)
    assert set(large.plan.parameters) == set(default.plan.parameters)
    assert large.model.count_params() == default.model.count_params() < 0.9 * model.count_params()
    assert assert_oracle(large, rtol=1e-4) <= 1e-4
    np.testing.assert_allclose(keras_output(large.model, x), onnx_output(large.onnx, x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(keras_output(large.model, x), keras_output(default.model, x), rtol=1e-4, atol=1e-5)


def test_export_of_initial_weights_keeps_zero_biases_and_identity_bn():
    """Probe weights: tf2onnx cannot drop a zero bias or merge equal BN constants."""
    model, x = zoo.vgg_sequential(init_values=True)
    ex = export(model, x, {})
    for name in ("c1/bias", "fc1/bias", "logits/bias", "bn1/scale", "fc1_bn/shift"):
        assert name in ex.parameter_map, name
    np.testing.assert_allclose(onnx_output(ex.onnx, x), keras_output(model, x), rtol=1e-4, atol=1e-5)


def test_hand_made_plan_equals_numpy_sliced_onnx():
    """Keep every other channel of one conv (and its folded BN) and of its consumer's input."""
    model, x = zoo.resnet()
    ex = export(model, x, {})
    keep = list(range(0, 16, 2))
    cut = {
        "stage0_a_conv/kernel*stage0_a_bn": {0: keep},
        "stage0_a_bn/shift": {0: keep},
        "stage0_b_conv/kernel*stage0_b_bn": {1: keep},
    }
    shapes = {i.name: list(i.dims) for i in ex.onnx.graph.initializer}
    plan = Plan(parameters={n: ParameterPlan(shapes[n], k) for n, k in cut.items()})
    sliced = onnx.ModelProto()
    sliced.CopyFrom(ex.onnx)
    for init in sliced.graph.initializer:
        if init.name in cut:
            value = numpy_helper.to_array(init)
            for axis, kept in cut[init.name].items():
                value = np.take(value, kept, axis=axis)
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    new = apply_plan(model, plan, ex)
    assert new.get_layer("stage0_a_conv").get_config()["filters"] == 8
    assert new.get_layer("stage0_a_bn").get_weights()[0].shape == (8,)
    bn = model.get_layer("stage0_a_bn").get_weights()[2]  # moving_mean
    np.testing.assert_array_equal(new.get_layer("stage0_a_bn").get_weights()[2], bn[keep])
    np.testing.assert_allclose(keras_output(new, x), onnx_output(sliced, x), rtol=1e-4, atol=1e-5)
    assert model.get_layer("stage0_a_conv").get_config()["filters"] == 16  # original untouched


def test_plan_that_does_not_fit_is_refused():
    model, x = zoo.resnet()
    ex = export(model, x, {})
    plan = Plan(
        parameters={
            "stage0_a_conv/kernel*stage0_a_bn": ParameterPlan([16, 16, 3, 3], {0: [0, 1]}),
            "stage0_a_bn/shift": ParameterPlan([16], {0: [2, 3]}),
        }
    )
    with pytest.raises(FrameworkError, match="different"):
        apply_plan(model, plan, ex)


# ---------------------------------------------------------------- plugin hooks and errors
def test_detect_framework():
    model, _ = zoo.resnet()
    assert plugin.spa_detect_framework(model=model) == "keras"
    assert plugin.spa_detect_framework(model=np.zeros(3)) is None
    assert plugin.spa_export(model=model, example_inputs=None, framework="torch", options={}) is None


def test_subclassed_model_gets_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(8, 3)
            self.head = keras.layers.Dense(3)

        def call(self, x):
            return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))

    net = Net()
    x = np.zeros((1, 8, 8, 3), np.float32)
    net(x)
    with pytest.raises(FrameworkError, match="functional API.*spa prune model.onnx"):
        spa_core.prune(net, x, ratio=0.3)


def test_save_and_load_errors(tmp_path):
    model, _ = zoo.resnet()
    with pytest.raises(InvalidOptionError, match=".keras"):
        plugin.spa_save_model(model=model, path=str(tmp_path / "m.onnx"), framework="keras", options={})
    assert plugin.spa_load_model(path=str(tmp_path / "m.pt"), framework=None, options={}) is None
    with pytest.raises(InvalidModelError, match="not found"):
        plugin.spa_load_model(path=str(tmp_path / "missing.keras"), framework=None, options={})
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InvalidModelError, match="not a loadable Keras model"):
        plugin.spa_load_model(path=str(bad), framework=None, options={})
    assert not list(tmp_path.glob(".*.tmp*"))  # no staging files left behind
