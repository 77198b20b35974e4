"""Odd and hostile models: each either prunes exactly or fails with one clear sentence."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import zoo
from onnx import TensorProto, helper, numpy_helper, version_converter
from onnx_builders import conv_sandwich, make_model, weight

import spa_core
from spa_core.errors import InvalidModelError, InvalidOptionError, UnprunableModelError
from spa_core.runtime import random_inputs, run_model
from spa_core.testing import assert_oracle

H = helper.make_node


def test_external_data_model_loads_prunes_and_saves_large_layout(tmp_path, monkeypatch):
    model, x = zoo.build("resnet_basic")
    proto = zoo.export(model, x)
    path = tmp_path / "ext.onnx"
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
                    size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    result = spa_core.prune_onnx(path, ratio=0.5)
    assert_oracle(result)
    # force the > 2 GB layout (weights in a side file) with a tiny threshold
    import spa_core.io as spa_io

    monkeypatch.setattr(spa_io, "EXTERNAL_DATA_THRESHOLD", 1)
    out = tmp_path / "out" / "pruned.onnx"
    spa_io.save_model(result.onnx, out)
    assert (out.parent / "pruned.onnx.data").exists()
    reloaded = spa_io.load_model(out)
    feeds = random_inputs(reloaded)
    a, b = run_model(reloaded, feeds), run_model(result.onnx, feeds)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in out.parent.iterdir()) == ["pruned.onnx", "pruned.onnx.data"]


def _dynamic(batch: bool, extra: bool):
    m = conv_sandwich([H("Relu", ["a"], ["b"])], 8)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if batch:
        dims[0].Clear()
        dims[0].dim_param = "batch"
    if extra:
        dims[2].Clear()
        dims[2].dim_param = "height"
    return m


def test_dynamic_batch_defaults_to_one():
    result = spa_core.prune_onnx(_dynamic(batch=True, extra=False), ratio=0.5)
    assert_oracle(result)


def test_dynamic_spatial_dim_needs_input_shape():
    with pytest.raises(InvalidOptionError, match=r"dynamic dimension 'height'.*--input-shape x:"):
        spa_core.prune_onnx(_dynamic(batch=True, extra=True), ratio=0.5)
    result = spa_core.prune_onnx(_dynamic(batch=True, extra=True), ratio=0.5, input_shapes={"x": (2, 3, 8, 8)})
    assert_oracle(result)


def _if_model():
    """A Conv whose output feeds an If; both branches read an outer value."""
    then_g = helper.make_graph([H("Relu", ["a"], ["t"])], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([H("Sigmoid", ["a"], ["e"])], "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [
        H("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        H("If", ["cond"], ["b"], then_branch=then_g, else_branch=else_g),
        H("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1]),
        H("Relu", ["c"], ["d"]),
        H("Conv", ["d", "w3"], ["y"], pads=[1, 1, 1, 1]),
    ]
    inits = {"w1": weight(8, 3, 3, 3), "w2": weight(6, 8, 3, 3), "w3": weight(4, 6, 3, 3), "cond": np.array(True)}
    return make_model(nodes, {"x": (1, 3, 8, 8)}, ["y"], inits)


def test_subgraphs_are_barriers_not_crashes():
    analysis = spa_core.analyze_onnx(_if_model())
    assert analysis.unknown_ops.get("If") == 1
    members = {m for g in analysis.groups for m, _ in g.members}
    assert "w1" not in members  # read inside the If
    assert "w2" in members and "w3" in members  # after it, c -> d -> Conv is prunable
    assert_oracle(spa_core.prune_onnx(_if_model(), ratio=0.5))


@pytest.mark.parametrize("opset", [11, 12, 13, 15, 17, 18, 19, 21, 23])
def test_opsets_11_to_newest(opset):
    model, x = zoo.build("mobilenetv2")
    proto = zoo.export(model, x, opset=min(opset, 17) if opset <= 17 else 17)
    if opset > 17:
        proto = version_converter.convert_version(proto, opset)
    assert proto.opset_import[0].version == opset
    result = spa_core.prune_onnx(proto, ratio=0.5)
    assert result.plan.removed_channels > 0
    assert_oracle(result)


def test_initializer_shared_by_two_convs_is_pruned_consistently():
    nodes = [
        H("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        H("Conv", ["x", "w1"], ["a2"], pads=[1, 1, 1, 1]),
        H("Relu", ["a"], ["r1"]), H("Sigmoid", ["a2"], ["r2"]),
        H("Conv", ["r1", "w2"], ["y1"]), H("Conv", ["r2", "w3"], ["y2"]),
    ]
    m = make_model(nodes, {"x": (1, 3, 6, 6)}, ["y1", "y2"], {"w1": weight(8, 3, 3, 3), "w2": weight(4, 8, 1, 1), "w3": weight(5, 8, 1, 1)})
    result = spa_core.prune_onnx(m, ratio=0.5)
    g = next(g for g in result.analysis.groups if ("w1", 0) in g.members)
    assert {("w2", 1), ("w3", 1)} <= set(g.members)
    assert_oracle(result)


def test_weight_used_as_weight_and_as_data():
    """w1 is a conv weight and also flows into the graph as a tensor: its output axis is coupled."""
    nodes = [
        H("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        H("ReduceSum", ["w1"], ["s"], axes=[1, 2, 3], keepdims=1),
        H("Transpose", ["s"], ["st"], perm=[1, 0, 2, 3]),
        H("Add", ["a", "st"], ["b"]),
        H("Conv", ["b", "w2"], ["y"]),
    ]
    m = make_model(nodes, {"x": (1, 3, 6, 6)}, ["y"], {"w1": weight(8, 3, 3, 3), "w2": weight(4, 8, 1, 1)}, opset=12)
    result = spa_core.prune_onnx(m, ratio=0.5)
    assert result.plan.removed_channels > 0
    assert_oracle(result)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9, 0.99, 0.999999])
def test_ratios_up_to_nearly_one_keep_at_least_one_channel(ratio):
    model, x = zoo.build("resnet_bottleneck")
    result = spa_core.prune_onnx(zoo.export(model, x), ratio=ratio)
    assert all(len(g.kept) >= 1 for g in result.plan.groups)
    assert_oracle(result)


def test_min_keep_and_max_ratio_bound_groups():
    model, x = zoo.build("resnet_basic")
    result = spa_core.prune_onnx(zoo.export(model, x), ratio=0.95, min_keep=4, max_ratio=0.5)
    for g in result.plan.groups:
        assert len(g.kept) >= max(4, g.size // 2)


def test_empty_graph_is_refused_clearly():
    graph = helper.make_graph([], "empty", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnprunableModelError, match="nothing to prune"):
        spa_core.prune_onnx(m, ratio=0.5)


def test_non_onnx_bytes_and_files(tmp_path):
    with pytest.raises(InvalidModelError):
        spa_core.prune_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(InvalidModelError, match="not a readable ONNX model|not an ONNX model"):
        spa_core.prune_onnx(bad)


def test_input_model_object_is_never_modified():
    model, x = zoo.build("densenet")
    proto = zoo.export(model, x)
    before = proto.SerializeToString()
    spa_core.prune_onnx(proto, ratio=0.5)
    assert proto.SerializeToString() == before


def test_plan_for_another_model_is_refused():
    a, xa = zoo.build("resnet_basic")
    b, xb = zoo.build("mobilenetv2")
    plan = spa_core.prune_onnx(zoo.export(a, xa), ratio=0.5).plan
    with pytest.raises(InvalidOptionError, match="does not have|does not match"):
        spa_core.apply_plan_onnx(zoo.export(b, xb), plan)


def test_numpy_helper_roundtrip_of_pruned_weights_keeps_dtype():
    m = conv_sandwich([H("Relu", ["a"], ["b"])], 8)
    for t in m.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    result = spa_core.prune_onnx(m, ratio=0.5)
    assert all(t.data_type == TensorProto.FLOAT for t in result.onnx.graph.initializer)
