"""Shape inference and checks on the weightless view agree with onnx's own, without the weights."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, shape_inference

from spa_core.errors import SpaError
from spa_core.shape_inference import (
    LARGE_ELEMENTS,
    check_model,
    check_shapes,
    infer_shapes,
    weightless_view,
)
from tests.onnx_builders import make_model, weight


def conv_reshape_model(out_channels: int = 64) -> onnx.ModelProto:
    """Conv (a large weight) -> Reshape by a small int64 shape initializer -> MatMul (large weight)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "m"], ["y"]),
    ]
    inits = {"w": weight(out_channels, 8, 3, 3), "shape": np.array([1, -1], dtype=np.int64),
             "m": weight(out_channels * 16, 10)}
    model = make_model(nodes, {"x": (1, 8, 4, 4)}, ["y"], inits)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10]))
    return model


def shapes_of(model: onnx.ModelProto) -> dict[str, list[int]]:
    return {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
            for vi in list(model.graph.value_info) + list(model.graph.output)}


def test_view_moves_only_large_float_weights() -> None:
    model = conv_reshape_model()
    view = weightless_view(model)
    kept = {t.name for t in view.graph.initializer}
    typed = {i.name for i in view.graph.input}
    assert kept == {"shape"}  # the int64 shape stays: data propagation needs its value
    assert {"w", "m"} <= typed and all(np.prod(t.dims) >= LARGE_ELEMENTS for t in model.graph.initializer
                                       if t.name in {"w", "m"})
    assert len(model.graph.initializer) == 3  # the model itself is untouched


def test_inferred_shapes_equal_onnx_inference_on_the_full_model() -> None:
    expected = shapes_of(shape_inference.infer_shapes(conv_reshape_model(), data_prop=True))
    model = conv_reshape_model()
    got = shapes_of(infer_shapes(model, data_prop=True))
    assert got == expected and got["y"] == [1, 10]
    assert {t.name for t in model.graph.initializer} == {"w", "shape", "m"}  # weights kept


def test_checks_still_catch_an_inconsistent_model() -> None:
    model = conv_reshape_model()
    check_model(model)
    check_shapes(model)
    bad = conv_reshape_model()
    bad.graph.initializer[2].CopyFrom(onnx.numpy_helper.from_array(weight(64 * 16 + 1, 10), "m"))  # wrong rows
    with pytest.raises(Exception):  # noqa: B017 - onnx raises its own inference error type
        check_shapes(bad)


def test_surgery_check_rejects_a_wrong_weight_shape() -> None:
    from spa_core.surgery import check_model as check_pruned

    bad = conv_reshape_model()
    bad.graph.initializer[2].CopyFrom(onnx.numpy_helper.from_array(weight(64 * 16 + 1, 10), "m"))
    with pytest.raises(SpaError, match="shape inference|onnxruntime"):
        check_pruned(bad)
