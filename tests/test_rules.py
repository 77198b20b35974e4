"""The oracle on every propagation rule, with one- or few-node ONNX models.

For each model: ratio 0 is bit-exact; ratio 0.5 really removes channels, shrinks
parameters, and the pruned model equals the original with those channels zeroed.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx_builders import conv_sandwich, linear_sandwich, make_model, weight

import spa_core
from spa_core.runtime import random_inputs, run_model
from spa_core.testing import assert_oracle

H = helper.make_node
C = 8


def ident(x="a", y="b"):
    return [H("Identity", [x], [y])]


def i64(*v):
    return np.array(v, dtype=np.int64)


PRUNABLE = {
    "conv2d": lambda: conv_sandwich(ident(), C),
    "conv1d": lambda: conv_sandwich([H("Relu", ["a"], ["b"])], C, spatial=1),
    "conv3d": lambda: conv_sandwich([H("Relu", ["a"], ["b"])], C, spatial=3),
    "conv_grouped": lambda: conv_sandwich([H("Conv", ["a", "wg"], ["b"], group=2, pads=[1, 1, 1, 1])], 8, {"wg": weight(8, 4, 3, 3)}),
    "conv_depthwise": lambda: conv_sandwich([H("Conv", ["a", "wd", "bd"], ["b"], group=8, pads=[1, 1, 1, 1])], 8, {"wd": weight(8, 1, 3, 3), "bd": weight(8)}),
    "conv_depthwise_multiplier": lambda: conv_sandwich([H("Conv", ["a", "wd"], ["b"], group=8, pads=[1, 1, 1, 1])], 16, {"wd": weight(16, 1, 3, 3)}),
    "convtranspose": lambda: conv_sandwich([H("ConvTranspose", ["a", "wt", "bt"], ["b"], strides=[2, 2])], 6, {"wt": weight(8, 6, 2, 2), "bt": weight(6)}),
    "convtranspose_grouped": lambda: conv_sandwich([H("ConvTranspose", ["a", "wt"], ["b"], strides=[2, 2], group=2)], 6, {"wt": weight(8, 3, 2, 2)}),
    "convtranspose_depthwise": lambda: conv_sandwich([H("ConvTranspose", ["a", "wt"], ["b"], strides=[2, 2], group=8)], 8, {"wt": weight(8, 1, 2, 2)}),
    "batchnorm": lambda: conv_sandwich(
        [H("BatchNormalization", ["a", "s", "o", "m", "v"], ["b"])], C,
        {"s": weight(C), "o": weight(C), "m": weight(C), "v": np.abs(weight(C)) + 0.5},
    ),
    "instancenorm": lambda: conv_sandwich([H("InstanceNormalization", ["a", "s", "o"], ["b"])], C, {"s": weight(C), "o": weight(C)}),
    "groupnorm_18": lambda: conv_sandwich(
        [H("GroupNormalization", ["a", "s", "o"], ["b"], num_groups=4)], C, {"s": weight(4), "o": weight(4)}, opset=18
    ),
    "groupnorm_21": lambda: conv_sandwich(
        [H("GroupNormalization", ["a", "s", "o"], ["b"], num_groups=4)], C, {"s": weight(C), "o": weight(C)}, opset=21
    ),
    "add_channel_constant": lambda: conv_sandwich([H("Add", ["a", "k"], ["b"])], C, {"k": weight(1, C, 1, 1)}),
    "mul_broadcast_constant": lambda: conv_sandwich([H("Mul", ["a", "k"], ["b"])], C, {"k": weight(C, 1, 1)}),
    "residual_add": lambda: conv_sandwich([H("Relu", ["a"], ["r"]), H("Add", ["a", "r"], ["b"])], C),
    "max_of_branches": lambda: conv_sandwich([H("Sigmoid", ["a"], ["r"]), H("Max", ["a", "r"], ["b"])], C),
    "prelu": lambda: conv_sandwich([H("PRelu", ["a", "k"], ["b"])], C, {"k": weight(C, 1, 1)}),
    "div_sub": lambda: conv_sandwich([H("Div", ["a", "k"], ["d"]), H("Sub", ["d", "a"], ["b"])], C, {"k": np.abs(weight(C, 1, 1)) + 1}),
    "where": lambda: conv_sandwich(
        [H("Greater", ["a", "z"], ["g"]), H("Where", ["g", "a", "z"], ["b"])], C, {"z": np.zeros((1,), np.float32)}
    ),
    "clip": lambda: conv_sandwich([H("Clip", ["a", "lo", "hi"], ["b"])], C, {"lo": np.array(-0.5, np.float32), "hi": np.array(0.5, np.float32)}),
    "dropout_cast": lambda: conv_sandwich([H("Dropout", ["a"], ["d"]), H("Cast", ["d"], ["b"], to=TensorProto.FLOAT)], C),
    "concat": lambda: conv_sandwich(
        [H("Conv", ["x", "w3"], ["a2"], pads=[1, 1, 1, 1]), H("Concat", ["a", "a2"], ["b"], axis=1)], 12, {"w3": weight(4, 3, 3, 3)}
    ),
    "split_13": lambda: conv_sandwich(
        [H("Split", ["a", "sp"], ["s1", "s2"], axis=1), H("Relu", ["s2"], ["r2"]), H("Concat", ["r2", "s1"], ["b"], axis=1)],
        C, {"sp": i64(3, 5)}, opset=13,
    ),
    "split_18_num_outputs": lambda: conv_sandwich(
        [H("Split", ["a"], ["s1", "s2"], axis=1, num_outputs=2), H("Concat", ["s2", "s1"], ["b"], axis=1)], C, opset=18
    ),
    "split_11_attribute": lambda: conv_sandwich(
        [H("Split", ["a"], ["s1", "s2"], axis=1, split=[3, 5]), H("Concat", ["s2", "s1"], ["b"], axis=1)], C, opset=11
    ),
    "slice_channels": lambda: conv_sandwich([H("Slice", ["a", "st", "en", "ax"], ["b"])], 4, {"st": i64(2), "en": i64(6), "ax": i64(1)}),
    "slice_two_halves": lambda: conv_sandwich(
        [H("Slice", ["a", "st", "en", "ax"], ["h1"]), H("Slice", ["a", "en", "big", "ax"], ["h2"]), H("Add", ["h1", "h2"], ["b"])],
        4, {"st": i64(0), "en": i64(4), "big": i64(2**62), "ax": i64(1)},
    ),
    # a constant permutation of the channels (CSATv2's zigzag order): its indices are sliced with them
    "gather_channel_permutation": lambda: conv_sandwich(
        [H("Gather", ["a", "perm"], ["b"], axis=1)], C, {"perm": i64(*np.random.default_rng(1).permutation(C))}
    ),
    "transpose": lambda: conv_sandwich([H("Transpose", ["a"], ["t"], perm=[0, 1, 3, 2]), H("Relu", ["t"], ["b"])], C),
    "transpose_channels_last": lambda: conv_sandwich(
        [H("Transpose", ["a"], ["t"], perm=[0, 2, 3, 1]), H("Transpose", ["t"], ["b"], perm=[0, 3, 1, 2])], C
    ),
    "pad_constant": lambda: conv_sandwich([H("Pad", ["a", "p"], ["b"])], C, {"p": i64(0, 0, 1, 1, 0, 0, 1, 1)}),
    "pad_reflect_spatial": lambda: conv_sandwich([H("Pad", ["a", "p"], ["b"], mode="reflect")], C, {"p": i64(0, 0, 1, 1, 0, 0, 1, 1)}),
    "resize_scales": lambda: conv_sandwich(
        [H("Resize", ["a", "", "sc"], ["b"], mode="nearest")], C, {"sc": np.array([1, 1, 2, 2], np.float32)}, opset=13
    ),
    "resize_sizes": lambda: conv_sandwich(
        [H("Resize", ["a", "", "", "sz"], ["b"], mode="linear")], C, {"sz": i64(1, C, 12, 12)}, opset=13
    ),
    "maxpool": lambda: conv_sandwich([H("MaxPool", ["a"], ["b"], kernel_shape=[2, 2], strides=[2, 2])], C),
    "avgpool": lambda: conv_sandwich([H("AveragePool", ["a"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], C),
    "lppool": lambda: conv_sandwich([H("LpPool", ["a"], ["b"], kernel_shape=[2, 2], p=2)], C),
    "global_pools": lambda: conv_sandwich(
        [H("GlobalAveragePool", ["a"], ["g1"]), H("GlobalMaxPool", ["a"], ["g2"]), H("Add", ["g1", "g2"], ["b"])], C
    ),
    "reducemean_spatial": lambda: conv_sandwich([H("ReduceMean", ["a", "ax"], ["b"], keepdims=1)], C, {"ax": i64(2, 3)}, opset=18),
    "reducemean_spatial_legacy": lambda: conv_sandwich([H("ReduceMean", ["a"], ["b"], axes=[2, 3])], C, opset=13),
    "reducesum_channels": lambda: conv_sandwich([H("ReduceSum", ["a", "ax"], ["b"], keepdims=1)], 1, {"ax": i64(1)}, opset=13),
    "softmax_spatial": lambda: conv_sandwich([H("Softmax", ["a"], ["b"], axis=-1)], C, opset=13),
    "squeeze_unsqueeze": lambda: conv_sandwich(
        [H("Unsqueeze", ["a", "z"], ["u"]), H("Squeeze", ["u", "z"], ["b"])], C, {"z": i64(0)}, opset=13
    ),
    "expand": lambda: conv_sandwich([H("Expand", ["a", "sh"], ["b"])], C, {"sh": i64(2, C, 8, 8)}),
    "tile_spatial": lambda: conv_sandwich([H("Tile", ["a", "rp"], ["b"])], C, {"rp": i64(1, 1, 2, 1)}),
    "flatten_reshape_chain": lambda: conv_sandwich(
        [H("Flatten", ["a"], ["f"], axis=1), H("Reshape", ["f", "sh"], ["b"])], C, {"sh": i64(1, C, 8, 8)}
    ),
    "unary_ops": lambda: conv_sandwich(
        [H("Sigmoid", ["a"], ["u1"]), H("Tanh", ["u1"], ["u2"]), H("LeakyRelu", ["u2"], ["u3"], alpha=0.1),
         H("HardSwish", ["u3"], ["u4"]), H("Elu", ["u4"], ["u5"]), H("Softplus", ["u5"], ["u6"]),
         H("Abs", ["u6"], ["u7"]), H("Erf", ["u7"], ["u8"]), H("Neg", ["u8"], ["b"])], C,
    ),
    "gelu_20": lambda: conv_sandwich([H("Gelu", ["a"], ["b"])], C, opset=20),
    "gemm_flatten": lambda: make_model(
        [H("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), H("Relu", ["a"], ["r"]), H("Flatten", ["r"], ["f"]),
         H("Gemm", ["f", "wg", "bg"], ["h"], transB=1), H("Relu", ["h"], ["h2"]), H("Gemm", ["h2", "wo"], ["y"])],
        {"x": (2, 3, 4, 4)}, ["y"], {"w1": weight(C, 3, 3, 3), "wg": weight(12, C * 16), "bg": weight(12), "wo": weight(12, 5)},
    ),
    "matmul_weight_left": lambda: make_model(
        [H("MatMul", ["w1", "x"], ["a"]), H("Relu", ["a"], ["r"]), H("MatMul", ["w2", "r"], ["y"])],
        {"x": (6, 4)}, ["y"], {"w1": weight(10, 6), "w2": weight(3, 10)},
    ),
    "matmul_linear": lambda: linear_sandwich([H("Relu", ["a"], ["b"])], 16),
    "embedding_gather": lambda: _embedding_model(),
    "attention_heads": lambda: _attention_model(),
}


def _embedding_model():
    graph = helper.make_graph(
        [H("Gather", ["emb", "tok"], ["e"]), H("MatMul", ["e", "w2"], ["y"])],
        "emb",
        [helper.make_tensor_value_info("tok", TensorProto.INT64, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("emb", TensorProto.FLOAT, [20, 12], weight(20, 12).ravel()),
         helper.make_tensor("w2", TensorProto.FLOAT, [12, 3], weight(12, 3).ravel())],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _attention_model(heads: int = 4, hd: int = 4):
    """Q, K, V projections, split into heads, attention, merge heads, output projection."""
    e = heads * hd
    nodes, inits = [], {}
    for p in "qkv":
        inits[f"w{p}"] = weight(12, e)
        nodes += [H("MatMul", ["x", f"w{p}"], [f"{p}0"]), H("Reshape", [f"{p}0", "hs"], [f"{p}1"]),
                  H("Transpose", [f"{p}1"], [p], perm=[0, 2, 1, 3])]
    nodes += [
        H("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), H("MatMul", ["q", "kt"], ["s"]),
        H("Softmax", ["s"], ["p"], axis=-1), H("MatMul", ["p", "v"], ["o"]),
        H("Transpose", ["o"], ["o1"], perm=[0, 2, 1, 3]), H("Reshape", ["o1", "ms"], ["o2"]),
        H("MatMul", ["o2", "wo"], ["y"]),
    ]
    inits.update(hs=i64(2, 6, heads, hd), ms=i64(2, 6, e), wo=weight(e, 12))
    return make_model(nodes, {"x": (2, 6, 12)}, ["y"], inits)


def _outputs(model):
    feeds = random_inputs(model)
    return feeds, run_model(model, feeds)


@pytest.mark.parametrize("name", sorted(PRUNABLE))
def test_rule_oracle(name):
    model = PRUNABLE[name]()
    analysis = spa_core.analyze_onnx(model)
    assert analysis.groups, f"{name}: nothing prunable; barriers {dict(analysis.blocked_reasons)}"
    exact = spa_core.prune_onnx(model, ratio=0.0, analysis=analysis)
    feeds, expected = _outputs(model)
    got = run_model(exact.onnx, feeds)
    for k, v in expected.items():
        assert np.array_equal(got[k], v), f"{name}: ratio 0 changed output {k}"
    result = spa_core.prune_onnx(model, ratio=0.5, analysis=analysis)
    assert result.plan.removed_channels > 0
    assert result.report.params_after < result.report.params_before
    assert_oracle(result, rtol=1e-4)
    # pruning really changed the function (so the oracle compared something)
    pruned_out = run_model(result.onnx, feeds)
    assert any(not np.allclose(pruned_out[k], v) for k, v in expected.items())


def test_attention_prunes_whole_heads():
    analysis = spa_core.analyze_onnx(_attention_model(heads=4, hd=4))
    sizes = sorted(g.size for g in analysis.groups)
    assert 4 in sizes, f"expected a 4-head group, got sizes {sizes}"
    heads = next(g for g in analysis.groups if g.size == 4)
    members = {m for m, _ in heads.members}
    assert {"wq", "wk", "wv", "wo"} <= members


def test_grouped_conv_keeps_group_count_and_depthwise_shrinks_it():
    res = spa_core.prune_onnx(PRUNABLE["conv_depthwise"](), ratio=0.5)
    conv = [n for n in res.onnx.graph.node if n.op_type == "Conv"][1]
    group = next(a.i for a in conv.attribute if a.name == "group")
    assert group == 4
    res = spa_core.prune_onnx(PRUNABLE["conv_grouped"](), ratio=0.5)
    conv = [n for n in res.onnx.graph.node if n.op_type == "Conv"][1]
    assert next(a.i for a in conv.attribute if a.name == "group") == 2


BARRIERS = {
    "softmax_over_channels": (lambda: conv_sandwich([H("Softmax", ["a"], ["b"], axis=1)], C, opset=13), "Softmax"),
    "layernorm_over_features": (
        lambda: linear_sandwich([H("LayerNormalization", ["a", "s", "o"], ["b"], axis=-1)], 16, {"s": weight(16), "o": weight(16)}),
        "LayerNormalization",
    ),
    "depth_to_space": (lambda: conv_sandwich([H("DepthToSpace", ["a"], ["b"], blocksize=2)], 2), "DepthToSpace"),
    "reducemean_channels": (lambda: conv_sandwich([H("ReduceMean", ["a"], ["b"], axes=[1])], 1, opset=13), "ReduceMean"),
    "custom_op": (lambda: _custom_op_model(), "my.domain:Frobnicate"),
}


def _custom_op_model():
    m = conv_sandwich([H("Frobnicate", ["a"], ["b"], domain="my.domain")], C)
    m.opset_import.append(helper.make_opsetid("my.domain", 1))
    return m


@pytest.mark.parametrize("name", sorted(BARRIERS))
def test_barriers_are_reported_not_pruned(name):
    factory, op = BARRIERS[name]
    model = factory()
    analysis = spa_core.analyze_onnx(model)
    first_layer = {"w1", "b1"}
    assert not any(m in first_layer for g in analysis.groups for m, _ in g.members)
    reasons = " ".join(analysis.blocked_reasons) + " " + " ".join(analysis.unknown_ops)
    assert op in reasons


def test_unknown_op_named_in_inspect_and_error():
    analysis = spa_core.analyze_onnx(_custom_op_model())
    assert analysis.unknown_ops == {"my.domain:Frobnicate": 1}
