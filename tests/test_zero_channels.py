"""Channels whose every weight in the group is zero go first, and removing them is free."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import zoo
from onnx import numpy_helper

import spa_core
from spa_core.runtime import random_inputs, run_model


def zero_channels(model: onnx.ModelProto, fraction: float, seed: int = 0):
    """Zero ``fraction`` of the root channels of every group, in every member; return the model and the choice."""
    analysis = spa_core.analyze_onnx(model)
    rng = np.random.default_rng(seed)
    arrays = {name: arr.copy() for name, arr in analysis.graph.initializers.items()}
    chosen = {}
    for g in analysis.groups:
        n = int(np.floor(fraction * g.size + 1e-9))
        picks = np.sort(rng.choice(g.size, n, replace=False))
        chosen[g.id] = set(picks.tolist())
        classes = g.classes[picks]
        for name, axis in g.members:
            if name in analysis.statistics:
                continue
            pos = analysis.positions((name, axis), classes)
            index = [slice(None)] * arrays[name].ndim
            index[axis] = pos
            arrays[name][tuple(index)] = 0.0
    prepared = analysis.graph.model
    out = onnx.ModelProto()
    out.CopyFrom(prepared)
    for t in out.graph.initializer:
        if t.name in arrays and analysis.graph.is_parameter(t.name):
            t.CopyFrom(numpy_helper.from_array(arrays[t.name], t.name))
    return out, chosen


@pytest.mark.parametrize("arch", ["resnet_basic", "densenet", "mobilenetv2", "vit", "unet"])
@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_zero_channels_removed_first_and_free(arch, criterion):
    model, x = zoo.build(arch)
    zeroed, chosen = zero_channels(zoo.export(model, x), 0.25)
    result = spa_core.prune_onnx(zeroed, ratio=0.25, criterion=criterion)
    for g in result.plan.groups:
        assert set(g.removed) == chosen[g.id], f"group {g.id}: removed {g.removed}, zero {sorted(chosen[g.id])}"
    assert result.plan.removed_channels > 0
    feeds = random_inputs(zeroed)
    before = run_model(zeroed, feeds)
    after = run_model(result.onnx, feeds)
    for k, v in before.items():
        np.testing.assert_allclose(after[k], v, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(v).max())))
