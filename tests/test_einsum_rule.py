"""The Einsum rule under the oracle: weights contracted, activations multiplied, sums."""

from __future__ import annotations

import pytest
from onnx import helper
from onnx_builders import linear_sandwich, weight

import spa_core
from spa_core.runtime import random_inputs, run_model
from spa_core.testing import assert_oracle

H = helper.make_node
MODELS = {
    # a (2,6,16) contracted with a weight: like MatMul
    "weight": lambda: linear_sandwich([H("Einsum", ["a", "we"], ["b"], equation="bsf,fg->bsg")], 10,
                                      {"we": weight(16, 10)}, opset=17),
    # the same, implicit output ("bsz": the letters used once, sorted)
    "implicit": lambda: linear_sandwich([H("Einsum", ["a", "we"], ["b"], equation="bsf,fz")], 10,
                                        {"we": weight(16, 10)}, opset=17),
    # two activations multiplied channel by channel, then a weight
    "product": lambda: linear_sandwich([H("Relu", ["a"], ["r"]), H("Einsum", ["a", "r", "we"], ["b"],
                                        equation="bsf,bsf,fg->bsg")], 10, {"we": weight(16, 10)}, opset=17),
    # attention-like scores over the channels of one activation, then a sum over the channel axis
    "scores": lambda: linear_sandwich([H("Einsum", ["a", "a"], ["s"], equation="bsf,btf->bst"),
                                       H("Einsum", ["a", "s"], ["b"], equation="bsf,bst->btf")], 16, opset=17),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_einsum_oracle(name):
    model = MODELS[name]()
    analysis = spa_core.analyze_onnx(model)
    assert not analysis.unknown_ops
    assert analysis.groups, dict(analysis.blocked_reasons)
    result = spa_core.prune_onnx(model, ratio=0.5, analysis=analysis)
    assert result.plan.removed_channels > 0
    assert_oracle(result, rtol=1e-4)
    feeds = random_inputs(model)
    assert run_model(result.onnx, feeds).keys() == run_model(model, feeds).keys()


def test_diagonal_is_a_barrier():
    model = linear_sandwich([H("Einsum", ["a", "sq"], ["b"], equation="bsf,ff->bsf")], 16, {"sq": weight(16, 16)})
    analysis = spa_core.analyze_onnx(model)
    assert any("diagonal" in r for r in analysis.blocked_reasons)
