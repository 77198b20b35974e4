"""Every criterion on ResNet, MobileNetV2 and ViT-style models: torch, Keras and plain ONNX.

Derivatives are computed once per model (one calibration batch, one Hutchinson sample)
for all criteria together, from the native framework and from the ONNX graph run in
torch; both must agree, and every criterion must prune the model into a valid ONNX
model that still satisfies the engine's oracle.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import torch
import zoo

import spa_core
from spa_core.criteria.base import DATA_NEEDS, WEIGHTS, Criterion, ScoringContext, get_criterion
from spa_core.gradients import Calibration
from spa_core.gradients.context import native_scoring_context, onnx_scoring_context
from spa_core.plugins import plugin_manager
from spa_core.testing import assert_oracle

torch.set_num_threads(2)

CRITERIA = ["taylor", "snip", "grasp", "crop", "hessian", "lamp", "fpgm", "bn_scale"]


class Everything(Criterion):
    """A stand-in that needs every derivative, so one context serves all criteria."""

    name = "everything"
    needs = frozenset({WEIGHTS} | (DATA_NEEDS - {"activations"}))


def calibration(x: np.ndarray, classes: int, n: int = 2) -> Calibration:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, *x.shape[1:])).astype(np.float32)
    return Calibration([(xb, rng.integers(0, classes, n))], "cross_entropy", hessian_samples=1)


def check_all_criteria(exported: spa_core.ExportedModel, ctx: ScoringContext) -> None:
    analysis = spa_core.analyze_onnx(exported.onnx, exported.input_shapes or None)
    ctx.analysis = analysis
    for name in CRITERIA:
        result = spa_core.prune_onnx(exported.onnx, ratio=0.3, criterion=name, scoring=ctx, analysis=analysis)
        scores = np.concatenate([g.scores for g in result.plan.groups])
        assert np.isfinite(scores).all() and (scores >= 0).all(), name
        assert result.report.params_after < result.report.params_before, name
        assert_oracle(result, rtol=1e-3)


def assert_same_derivatives(native: ScoringContext, onnx_ctx: ScoringContext, tables=("gradients", "hvp")) -> None:
    for table in tables:
        a, b = getattr(native, table), getattr(onnx_ctx, table)
        common = [n for n in a if n in b]
        assert len(common) >= 0.8 * len(a), table
        for n in common:
            np.testing.assert_allclose(a[n], b[n], rtol=1e-3, atol=1e-5 * max(1.0, np.abs(b[n]).max()))


# ------------------------------------------------------------------ torch and plain ONNX
SLOW = pytest.mark.slow


@pytest.mark.parametrize("arch", ["resnet_basic", pytest.param("mobilenetv2", marks=SLOW), pytest.param("vit", marks=SLOW)])
def test_every_criterion_on_torch_models_and_their_onnx_file(arch: str, tmp_path):
    model, x = zoo.build(arch)
    exported = plugin_manager().hook.spa_export(model=model, example_inputs=x, framework="torch", options={})
    cal = calibration(x.numpy(), 10)
    native = native_scoring_context(Everything(), model, exported, cal)
    path = tmp_path / f"{arch}.onnx"
    path.write_bytes(exported.onnx.SerializeToString())
    analysis = spa_core.analyze_onnx(str(path))
    from_file = onnx_scoring_context(Everything(), analysis, str(path), cal)
    assert native.gradient_batches and native.hessian_diagonal
    assert_same_derivatives(native, from_file)
    check_all_criteria(exported, native)


def test_native_torch_prune_with_data_returns_a_working_smaller_model():
    model, x = zoo.build("resnet_basic")
    cal = calibration(x.numpy(), 10)
    result = spa_core.prune(model, x, ratio=0.5, criterion="snip", data=cal.data, loss="cross_entropy")
    assert result.report.params_after < 0.4 * result.report.params_before
    with torch.no_grad():
        assert result.model(x).shape == (1, 10)
    assert model.layers[0].conv1.out_channels == 16  # the original is untouched


# ------------------------------------------------------------------ Keras
try:
    from spa_keras import zoo as keras_zoo
except ImportError:  # Keras not installed: the Keras tests skip themselves
    keras_zoo = None


@pytest.mark.parametrize("arch,classes", [
    pytest.param("resnet", 10, marks=SLOW), pytest.param("mobilenet_v2", 10, marks=SLOW),
    pytest.param("attention", 3, marks=SLOW),
])
def test_every_criterion_on_keras_models(arch: str, classes: int):
    pytest.importorskip("tf2onnx")
    assert keras_zoo is not None
    model, x = keras_zoo.ZOO[arch]()
    exported = plugin_manager().hook.spa_export(model=model, example_inputs=x, framework="keras", options={})
    if arch == "attention":
        ids = np.random.default_rng(0).integers(0, 50, size=(2, x.shape[1])).astype(np.int32)
        cal = Calibration([(ids, np.array([0, 2]))], "cross_entropy", hessian_samples=1)
    else:
        cal = calibration(x, classes)
    native = native_scoring_context(Everything(), model, exported, cal)
    analysis = spa_core.analyze_onnx(exported.onnx, exported.input_shapes or None)
    from_onnx = onnx_scoring_context(Everything(), analysis, exported.onnx, cal)
    folded = [n for n, b in exported.parameter_map.items() if b.transform.startswith("bn_folded")]
    assert set(folded) <= set(native.weights)  # derivatives pair with the unfolded kernel
    # gradients of unfolded parameters agree; H·g does not (folding reparameterises the model)
    same = {n: native.gradients[n] for n in native.gradients if n not in native.weights}
    assert_same_derivatives(ScoringContext(gradients=same), from_onnx, ("gradients",))
    check_all_criteria(exported, native)


def test_keras_prune_with_data_end_to_end():
    pytest.importorskip("tf2onnx")
    assert keras_zoo is not None
    model, x = keras_zoo.ZOO["resnet"]()
    cal = calibration(x, 10)
    result = spa_core.prune(model, x, ratio=0.5, criterion="taylor", data=cal.data)
    out = np.asarray(result.model(x))
    assert out.shape == (1, 10) and result.report.params_after < result.report.params_before


def test_criteria_registry_lists_the_new_criteria_with_citations():
    for name in CRITERIA:
        crit = get_criterion(name)
        assert crit.name == name
        module_doc = __import__(type(crit).__module__, fromlist=["_"]).__doc__
        assert any(year in module_doc for year in ("19", "20")), name
