"""The oracle on whole architectures built in code with random weights."""

from __future__ import annotations

import numpy as np
import pytest
import zoo

import spa_core
from spa_core.runtime import random_inputs, run_model
from spa_core.testing import assert_oracle


@pytest.fixture(scope="module", params=sorted(zoo.ARCHITECTURES))
def exported(request):
    model, x = zoo.build(request.param)
    return request.param, zoo.export(model, x)


def test_ratio_zero_is_bit_identical(exported):
    name, model = exported
    result = spa_core.prune_onnx(model, ratio=0.0)
    feeds = random_inputs(model)
    expected = run_model(model, feeds)
    got = run_model(result.onnx, feeds)
    for k in expected:
        assert np.array_equal(expected[k], got[k]), name
    assert result.report.params_after == result.report.params_before


@pytest.mark.parametrize("criterion", ["l1", "l2", "random"])
def test_half_pruning_holds_the_oracle(exported, criterion):
    name, model = exported
    result = spa_core.prune_onnx(model, ratio=0.5, criterion=criterion)
    assert_oracle(result, rtol=1e-4)
    assert result.report.params_after < 0.85 * result.report.params_before, name
    assert result.report.macs_after < result.report.macs_before
    for g in result.report.groups:
        if g.channels_after < g.channels_before:
            assert g.params_removed > 0
    for name_, p in result.plan.parameters.items():
        tensor = next(t for t in result.onnx.graph.initializer if t.name == name_)
        assert list(tensor.dims) == p.new_shape


def test_global_ranking_and_round_to(exported):
    name, model = exported
    result = spa_core.prune_onnx(model, ratio=0.4, global_ranking=True, round_to=4)
    assert_oracle(result, rtol=1e-4)
    for g in result.plan.groups:
        assert len(g.kept) == g.size or len(g.kept) % 4 == 0 or g.size < 4
        assert len(g.kept) >= 1


EXPECTED_GROUP_KINDS = {
    "vit": lambda a: any(g.size == 4 for g in a.groups),  # 4 attention heads per block
    "densenet": lambda a: len(a.groups) >= 8,  # concat segments stay separate groups
}


def test_group_structure(exported):
    name, model = exported
    analysis = spa_core.analyze_onnx(model)
    assert analysis.groups
    check = EXPECTED_GROUP_KINDS.get(name)
    if check:
        assert check(analysis), name
    assert not analysis.unknown_ops, analysis.unknown_ops
