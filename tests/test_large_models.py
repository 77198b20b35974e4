"""Models past protobuf's 2 GiB limit: exported to a file, run in onnxruntime from external data.

A real one (torchvision's ViT-H/14, RegNet-Y-128GF) is in the coverage benchmark; here the
threshold is lowered so that a small network takes the same path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from spa_torch import export as torch_export

import spa_core
import spa_core.io
from spa_core.runtime import run_model
from spa_core.testing import assert_oracle


@pytest.fixture
def tiny_threshold(monkeypatch):
    monkeypatch.setattr(spa_core.io, "EXTERNAL_DATA_THRESHOLD", 1_000)
    monkeypatch.setattr(torch_export, "EXTERNAL_DATA_THRESHOLD", 1_000)


def test_a_model_over_the_limit_prunes_through_files(tiny_threshold, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    assert spa_core.io.needs_external_data(torch_export.export_module(model, (x,), {}).onnx)
    result = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    assert result.model[0].out_channels == 8
    assert_oracle(result, rtol=1e-4)
    got = run_model(result.onnx, {"input": x.numpy()})
    np.testing.assert_allclose(next(iter(got.values())), result.model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    path = tmp_path / "pruned.onnx"
    spa_core.io.save_model(result.onnx, path)
    assert (tmp_path / "pruned.onnx.data").exists()
    reloaded = spa_core.io.load_model(path)
    np.testing.assert_array_equal(next(iter(run_model(reloaded, {"input": x.numpy()}).values())),
                                  next(iter(got.values())))


def _small_model():
    import onnx
    from onnx import helper, numpy_helper

    w = np.arange(2 * 3 * 110 * 110, dtype=np.float32).reshape(2, 3, 110, 110)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"]), helper.make_node("Reshape", ["y", "shape"], ["z"])],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 110, 110])],
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1, 2], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key="k", value="v")
    return model


def test_copy_without_initializers_keeps_everything_else():
    model = _small_model()
    copy = spa_core.io.copy_without_initializers(model)
    assert not copy.graph.initializer
    for t in model.graph.initializer:
        copy.graph.initializer.append(t)
    assert copy.SerializeToString() == model.SerializeToString()


def test_external_weights_round_trip(tmp_path):
    import onnx
    from onnx import numpy_helper

    model = _small_model()
    skeleton = spa_core.io.external_weights(model, tmp_path / "m.onnx.data", "m.onnx.data")
    (tmp_path / "m.onnx").write_bytes(skeleton.SerializeToString())
    assert len(skeleton.SerializeToString()) < 1000, "the weights are not in the model file"
    inline = {t.name for t in skeleton.graph.initializer if not t.external_data}
    assert inline == {"shape"}, "integer (shape) tensors stay inline: onnxruntime reads them for shape inference"
    back = onnx.load(str(tmp_path / "m.onnx"), load_external_data=True)
    for a, b in zip(model.graph.initializer, back.graph.initializer):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))


def test_initializer_table_keeps_small_tensors_and_converts_weights_on_access():
    from spa_core.graph import InitializerTable

    table = InitializerTable(_small_model().graph.initializer)
    assert set(table) == {"w", "shape"} and len(table) == 2 and table.ndim("w") == 4
    assert table["shape"] is table["shape"], "small constants are converted once"
    first, second = table["w"], table["w"]
    assert first is not second, "weights are not kept (no second copy of them)"
    np.testing.assert_array_equal(first, second)
