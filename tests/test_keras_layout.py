"""Index bookkeeping of the Keras adapter: layouts, merged axes, folded BN, layer roles."""

from __future__ import annotations

import numpy as np
import pytest
from spa_keras import layout
from spa_keras.mapping import InitializerSource, Matcher
from spa_keras.rebuild import adapt_target_shape
from spa_keras.terms import RefUse, Term, WeightRef

from spa_core.errors import FrameworkError

KERNEL = WeightRef("conv", 0, "conv/kernel")
GAMMA = WeightRef("bn", 0, "bn/gamma")
VAR = WeightRef("bn", 3, "bn/moving_variance")


def test_axis_runs_split_merges_and_unit_axes():
    assert layout.axis_runs((3, 3, 8, 2), (3, 3, 16)) == [([0], [0]), ([1], [1]), ([2, 3], [2])]
    assert layout.axis_runs((8,), (1, 8, 1, 1)) == [([0], [0, 1]), ([], [2]), ([], [3])]
    assert layout.axis_runs((4, 6), (5, 5)) is None


def test_find_layout_recovers_hwio_to_oihw():
    rng = np.random.default_rng(0)
    hwio = rng.uniform(0.5, 1.5, (3, 3, 4, 8))
    assert layout.find_layout(hwio, hwio.transpose(3, 2, 0, 1)) == (3, 2, 0, 1)
    assert layout.find_layout(hwio, rng.uniform(size=(8, 4, 3, 3))) is None


def test_kept_of_a_merged_depthwise_axis():
    # depthwise kernel (kh, kw, C=4, M=2) exported as (C*M=8, 1, kh, kw)
    perm, native, onnx_shape = (2, 3, 0, 1), (3, 3, 4, 2), (8, 1, 3, 3)
    kept = layout.kept_to_native({0: [0, 1, 4, 5]}, perm, native, onnx_shape, "dw")
    assert kept == {2: [0, 2]}
    kept = layout.kept_to_native({0: [1, 3, 5, 7]}, perm, native, onnx_shape, "dw")
    assert kept == {3: [1]}
    with pytest.raises(FrameworkError, match="merged axis"):
        layout.kept_to_native({0: [0, 3]}, perm, native, onnx_shape, "dw")


def test_binding_axes_and_span_kept():
    assert layout.onnx_axes_to_native((3, 2, 0, 1), (3, 3, 4, 8), (8, 4, 3, 3)) == (3, 2, 0, 1)
    assert layout.onnx_axes_to_native((0,), (8,), (1, 8, 1, 1)) == (None, 0, None, None)
    assert layout.span_kept({2: [1], 3: [0, 1]}, (2, 3), (3, 3, 4, 2)) == [2, 3]
    assert layout.span_kept({0: [1]}, (2, 3), (3, 3, 4, 2)) is None


def _folded_conv() -> tuple[Matcher, dict[WeightRef, np.ndarray]]:
    rng = np.random.default_rng(1)
    probe = {KERNEL: rng.uniform(0.5, 1.5, (3, 3, 4, 8)), GAMMA: rng.uniform(0.5, 1.5, 8), VAR: rng.uniform(0.5, 1.5, 8)}
    kernel = Term("copy", (3, 3, 4, 8), (RefUse(KERNEL, "x", ((0,), (1,), (2,), (3,))),), label="conv/kernel")
    scale = Term(
        "bn_scale",
        (8,),
        (RefUse(GAMMA, "gamma", ((0,),)), RefUse(VAR, "moving_variance", ((0,),))),
        (("epsilon", 1e-3),),
        label="bn/scale",
    )
    return Matcher([kernel, scale], probe), probe


def test_folded_batch_norm_is_recognised_and_pruned_with_its_conv():
    matcher, probe = _folded_conv()
    s = probe[GAMMA] / np.sqrt(probe[VAR] + 1e-3)
    folded = (probe[KERNEL] * s).transpose(3, 2, 0, 1).astype(np.float32)
    source = matcher.match(folded)
    assert isinstance(source, InitializerSource)
    assert source.scale is not None and source.scale_axes == (3,) and source.perm == (3, 2, 0, 1)
    np.testing.assert_allclose(source.evaluate(probe), folded, rtol=1e-6)
    kept = source.native_kept({0: [1, 5], 1: [0, 2]}, "conv")
    assert kept == {KERNEL: {3: [1, 5], 2: [0, 2]}, GAMMA: {0: [1, 5]}, VAR: {0: [1, 5]}}
    assert source.binding().transform == "bn_folded:bn"


def test_constants_are_not_mistaken_for_weights():
    matcher, _ = _folded_conv()
    assert matcher.match(np.full((8, 4, 3, 3), 0.001, np.float32)) is None
    assert matcher.match(np.array([1.0, 2.0], np.float32)) is None


def test_reshape_target_follows_the_channels():
    assert adapt_target_shape((1, 1, 64), (64,), (40,)) == (1, 1, 40)
    assert adapt_target_shape((256, 8), (16, 16, 8), (16, 16, 5)) == (256, 5)
    assert adapt_target_shape((-1,), (4, 4, 8), (4, 4, 5)) == (-1,)
    with pytest.raises(FrameworkError, match="Reshape"):
        adapt_target_shape((3, 7), (21,), (20,))
