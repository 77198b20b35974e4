"""Cross-framework: a Keras model pruned through ONNX, rebuilt as a PyTorch module.

``spa_keras.cross.to_torch`` runs onnx2torch on the pruned ONNX model (after making it
acceptable to onnx2torch); the torch module must compute what onnxruntime computes.
"""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import onnx
import pytest
from onnx import helper

pytest.importorskip("keras")
pytest.importorskip("tf2onnx")
torch = pytest.importorskip("torch")
if importlib.util.find_spec("onnx2torch") is None:  # imported by to_torch (torchvision stand-in)
    pytest.skip("onnx2torch is not installed", allow_module_level=True)

from spa_keras import zoo  # noqa: E402
from spa_keras.apply import apply_plan  # noqa: E402
from spa_keras.cross import onnx2torch_ready, to_torch  # noqa: E402

import spa_core  # noqa: E402
from spa_core.errors import FrameworkError  # noqa: E402
from spa_core.runtime import run_model  # noqa: E402


def _torch_output(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    return (out[0] if isinstance(out, tuple | list) else out).numpy()


@pytest.mark.parametrize("name", ["resnet", "mobilenet_v2", "densenet", "vgg_sequential", "separable_transpose"])
def test_pruned_keras_model_as_torch_module(name):
    model, x = zoo.ZOO[name]()
    res = spa_core.prune(model, x, ratio=0.3)
    module = to_torch(res.onnx)
    assert isinstance(module, torch.nn.Module)
    expected = next(iter(run_model(res.onnx, {res.onnx.graph.input[0].name: x}).values()))
    np.testing.assert_allclose(_torch_output(module, x), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_torch_output(module, x), np.asarray(res.model(x)), rtol=1e-4, atol=1e-5)


def test_auto_pad_same_upper_becomes_explicit_pads():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 7, 7])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    w = onnx.numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])
    ready = onnx2torch_ready(model)
    attrs = {a.name: helper.get_attribute_value(a) for a in ready.graph.node[0].attribute}
    assert "auto_pad" not in attrs and attrs["pads"] == [1, 1, 1, 1]
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 2, 7, 7)).astype(np.float32)}
    np.testing.assert_allclose(run_model(ready, feeds)["y"], run_model(model, feeds)["y"], rtol=1e-6)
    np.testing.assert_allclose(_torch_output(to_torch(model), feeds["x"]), run_model(model, feeds)["y"], rtol=1e-5, atol=1e-6)


def test_prune_with_target_torch():
    """``spa_core.prune(keras_model, x, target="torch")`` returns a torch module equal to the pruned ONNX."""
    model, x = zoo.resnet()
    res = spa_core.prune(model, x, ratio=0.3, target="torch")
    assert isinstance(res.model, torch.nn.Module)
    expected = next(iter(run_model(res.onnx, {res.onnx.graph.input[0].name: x}).values()))
    np.testing.assert_allclose(_torch_output(res.model, x), expected, rtol=1e-4, atol=1e-5)
    native = apply_plan(model, res.plan, res.exported)  # the same plan applied to Keras
    np.testing.assert_allclose(_torch_output(res.model, x), np.asarray(native(x)), rtol=1e-4, atol=1e-5)


def test_unknown_target_is_refused():
    model, x = zoo.resnet()
    with pytest.raises(FrameworkError, match="mxnet"):
        spa_core.prune(model, x, ratio=0.3, target="mxnet")
