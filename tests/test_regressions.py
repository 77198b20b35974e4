"""Regressions found on real models, reproduced with small hand-built ONNX graphs.

ResNet50V2 (Keras, 32x32 input): at 1x1 resolution Grappler turns the residual ``Add``
of the first block of a stage into a ``BiasAdd``, and tf2onnx 1.17 folds it into the
shortcut Conv as a *fourth* input. Such a Conv is not valid ONNX; the analysis tied
only its three defined inputs, so the main branch kept its width while the shortcut was
pruned (onnxruntime: channel counts do not match). The engine now rejects such a node
by name, and the Keras export splits the extra bias back into an ``Add``.
No TensorFlow is needed here.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_builders import make_model
from spa_keras.tf_ops import split_extra_conv_bias

import spa_core
from spa_core.errors import InvalidModelError
from spa_core.runtime import random_inputs, run_model
from spa_core.testing import assert_oracle

H = helper.make_node
C, M, D = 8, 6, 12  # stage width, bottleneck width, next stage width


def i64(*v):
    return np.array(v, dtype=np.int64)


def resnet_v2_stage_boundary(tf2onnx_bias: bool):
    """Last block of a stage (MaxPool 1x1/2 shortcut on the identity), then the first block
    of the next (1x1 Conv shortcut on the *pre-activated* input), ending at 1x1.

    ``tf2onnx_bias``: the second residual Add is a fourth Conv input fed by
    ``Reshape(NCHW -> NHWC) -> Squeeze``, as tf2onnx 1.17 exports it.
    """
    rng = np.random.default_rng(1)  # both variants get the same weights

    def weight(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    inits = {
        "s1": weight(1, C, 1, 1), "t1": weight(1, C, 1, 1),
        "wa1": weight(C, C, 1, 1), "ba1": weight(C), "wa2": weight(C, C, 3, 3), "ba2": weight(C),
        "s2": weight(1, C, 1, 1), "t2": weight(1, C, 1, 1),
        "w0": weight(D, C, 1, 1), "b0": weight(D),
        "wb1": weight(M, C, 1, 1), "bb1": weight(M), "wb3": weight(D, M, 1, 1), "bb3": weight(D),
        "wh": weight(D, 5), "nhwc": i64(1, 1, 1, D), "sq_axes": i64(0, 1, 2),
    }
    nodes = [
        # block A: pre-activation, main branch with the stride, MaxPool shortcut on x
        H("Mul", ["x", "s1"], ["pa0"]), H("Add", ["pa0", "t1"], ["pa1"]), H("Relu", ["pa1"], ["pa"]),
        H("Conv", ["pa", "wa1", "ba1"], ["a1"]), H("Relu", ["a1"], ["a1r"]),
        H("Conv", ["a1r", "wa2", "ba2"], ["a2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        H("MaxPool", ["x"], ["sc"], kernel_shape=[1, 1], strides=[2, 2]),
        H("Add", ["sc", "a2"], ["outa"]),
        # block B: pre-activation, Conv shortcut on it, bottleneck main branch
        H("Mul", ["outa", "s2"], ["pb0"]), H("Add", ["pb0", "t2"], ["pb1"]), H("Relu", ["pb1"], ["pb"]),
        H("Conv", ["pb", "wb1", "bb1"], ["b1"]), H("Relu", ["b1"], ["b1r"]),
        H("Conv", ["b1r", "wb3", "bb3"], ["b3"]),
    ]
    if tf2onnx_bias:
        nodes += [
            H("Reshape", ["b3", "nhwc"], ["b3_nhwc"]),
            H("Squeeze", ["b3_nhwc", "sq_axes"], ["b3_vec"]),
            H("Conv", ["pb", "w0", "b0", "b3_vec"], ["outb"], name="conv5_block1_out/BiasAdd"),
        ]
    else:
        nodes += [H("Conv", ["pb", "w0", "b0"], ["short"]), H("Add", ["short", "b3"], ["outb"])]
    nodes += [H("Relu", ["outb"], ["r"]), H("Flatten", ["r"], ["f"]), H("MatMul", ["f", "wh"], ["y"])]
    return make_model(nodes, {"x": (1, C, 2, 2)}, ["y"], inits)


def test_resnet_v2_stage_boundary_prunes():
    model = resnet_v2_stage_boundary(tf2onnx_bias=False)
    res = spa_core.prune_onnx(model, ratio=0.5)
    assert assert_oracle(res) < 1e-4
    sizes = {t.name: tuple(t.dims) for t in res.onnx.graph.initializer}
    assert sizes["w0"][0] == sizes["wb3"][0] < D  # shortcut and main branch agree
    assert sizes["wa1"][0] == sizes["wa2"][1] < C  # the stage width is the input's: kept


def test_conv_with_a_fourth_input_is_rejected_by_name():
    with pytest.raises(InvalidModelError, match="conv5_block1_out/BiasAdd.*4 inputs"):
        spa_core.prune_onnx(resnet_v2_stage_boundary(tf2onnx_bias=True), ratio=0.3)


def test_split_extra_conv_bias_repairs_the_tf2onnx_conv():
    broken = resnet_v2_stage_boundary(tf2onnx_bias=True)
    assert split_extra_conv_bias(broken) == 1
    assert all(len(n.input) <= 3 for n in broken.graph.node if n.op_type == "Conv")
    reference = resnet_v2_stage_boundary(tf2onnx_bias=False)
    feeds = random_inputs(reference, seed=0)
    np.testing.assert_allclose(run_model(broken, feeds)["y"], run_model(reference, feeds)["y"], rtol=1e-5, atol=1e-5)
    res = spa_core.prune_onnx(broken, ratio=0.3)
    assert assert_oracle(res) < 1e-4
    sizes = {t.name: tuple(t.dims) for t in res.onnx.graph.initializer}
    assert sizes["w0"][0] == sizes["wb3"][0] < D
    assert split_extra_conv_bias(res.onnx) == 0


def test_exporter_deduplicated_weights_do_not_tie_layers():
    """torch's exporter turns equal fresh BatchNorm parameters into Identity copies of one
    initializer; the layers must still form groups of their own."""
    import io

    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 4, 1),
    ).eval()
    buf = io.BytesIO()
    torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), buf, dynamo=False, do_constant_folding=False)
    model = onnx.load_from_string(buf.getvalue())
    assert any(n.op_type == "Identity" for n in model.graph.node)  # the pattern is really there
    result = spa_core.prune_onnx(model, ratio=0.5)
    assert len(result.analysis.groups) == 2
    assert_oracle(result, rtol=1e-4)
