"""OBSPA: the OBS algebra, the consumers' input columns, and pruning end to end (tiny models)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_builders import make_model

import spa_core
from spa_core.errors import InvalidOptionError
from spa_core.graph import Graph
from spa_core.obspa import prune_obspa
from spa_core.obspa.consumers import find_consumers
from spa_core.obspa.hessian import columns
from spa_core.obspa.obs import ObsLayer, block_errors, compensate, damped_inverse, greedy_order
from spa_core.obspa.synth import gaussian_feeds, inverted_feeds, with_initializers
from spa_core.oracle import compare_outputs, zeroed_reference
from spa_core.runtime import run_model

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- algebra
def test_compensation_is_the_least_squares_optimum_for_the_kept_columns():
    x = RNG.standard_normal((400, 12))
    w = RNG.standard_normal((5, 12))
    removed = np.array([1, 2, 7, 8])
    kept = np.setdiff1d(np.arange(12), removed)
    new = compensate(w, x.T @ x / len(x), removed, damp=0.0)
    best = np.linalg.lstsq(x[:, kept], x @ w.T, rcond=None)[0].T
    np.testing.assert_allclose(new[:, kept], best, atol=1e-9)
    assert np.all(new[:, removed] == 0)


def test_obs_error_is_half_the_output_error_after_compensation():
    x = RNG.standard_normal((300, 9))
    h = x.T @ x / len(x)
    w = RNG.standard_normal((4, 9))
    blocks = np.arange(9).reshape(3, 3)
    errors = block_errors(w, np.linalg.inv(h), blocks)
    for i, q in enumerate(blocks):
        residual = (w - compensate(w, h, q, damp=0.0)) @ x.T
        np.testing.assert_allclose(errors[i], 0.5 * (residual**2).sum() / len(x), rtol=1e-9)


def test_greedy_removals_compose_to_the_joint_compensation():
    x = RNG.standard_normal((200, 8))
    h = x.T @ x / len(x)
    w = RNG.standard_normal((3, 8))
    blocks = np.arange(8).reshape(4, 2)
    layer = ObsLayer(w.copy(), damped_inverse(h, 0.01), blocks, None, 1.0)
    order, costs, _ = greedy_order([layer], 4, 2)
    errors = block_errors(w, damped_inverse(h, 0.01), blocks)
    assert order[0] == int(np.argmin(errors)) and costs[0, 0] == pytest.approx(errors.min())
    q = blocks[order].ravel()
    joint = compensate(w, h, q, damp=0.01)
    current = np.zeros_like(w)
    current[:, layer.pos >= 0] = layer.w[:, layer.pos[layer.pos >= 0]]
    np.testing.assert_allclose(current, joint, atol=1e-8)


# ----------------------------------------------------------------------------- models
def _conv_model(groups: int = 1) -> onnx.ModelProto:
    """x(2,3,9,9) -> Conv(8) -> BN -> Relu -> Conv(6, stride 2, dil, grouped) -> BN -> Relu -> GAP -> Gemm(4)."""
    c2_in = 8 // groups
    inits = {
        "w1": RNG.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "g1": RNG.uniform(0.5, 1.5, 8).astype(np.float32), "b1": RNG.uniform(-0.5, 0.5, 8).astype(np.float32),
        "m1": RNG.uniform(-1, 1, 8).astype(np.float32), "v1": RNG.uniform(0.5, 2, 8).astype(np.float32),
        "w2": RNG.standard_normal((6, c2_in, 3, 3)).astype(np.float32),
        "g2": RNG.uniform(0.5, 1.5, 6).astype(np.float32), "b2": RNG.uniform(-0.5, 0.5, 6).astype(np.float32),
        "m2": RNG.uniform(-1, 1, 6).astype(np.float32), "v2": RNG.uniform(0.5, 2, 6).astype(np.float32),
        "wf": RNG.standard_normal((4, 6)).astype(np.float32), "bf": RNG.standard_normal(4).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g1", "b1", "m1", "v1"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[2, 1, 2, 1], strides=[2, 2], dilations=[2, 1], group=groups),
        helper.make_node("BatchNormalization", ["c2", "g2", "b2", "m2", "v2"], ["n2"]),
        helper.make_node("Relu", ["n2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    return make_model(nodes, {"x": (2, 3, 9, 9)}, ["y"], inits)


@pytest.mark.parametrize("groups", [1, 2])
def test_consumer_columns_reproduce_the_layer(groups):
    model = _conv_model(groups)
    analysis = spa_core.analyze_onnx(model)
    consumers = [c for c in find_consumers(analysis) if c.weight == "w2"]
    assert len(consumers) == groups
    x = RNG.standard_normal((2, 3, 9, 9)).astype(np.float32)
    values = run_model(analysis.graph.model, {"x": x}, extra_outputs=["r1", "c2"])
    weight = analysis.graph.initializers["w2"]
    for c in consumers:
        cols = columns(c, values["r1"])
        got = cols @ c.matrix(weight).T  # (positions, out rows)
        want = np.moveaxis(values["c2"][:, c.rows], 1, -1).reshape(len(cols), -1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert c.bias == ("m2", -1.0)  # no own bias: the next BatchNorm's mean absorbs shifts
        (blocks,) = c.blocks.values()
        assert blocks.shape == (8 // groups, 9)  # grouped: position p of every group is one channel


def test_gemm_consumer_blocks_follow_flatten():
    inits = {"w1": RNG.standard_normal((4, 2, 3, 3)).astype(np.float32), "b1": np.zeros(4, np.float32),
             "wf": RNG.standard_normal((4 * 5 * 5, 3)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("MatMul", ["f", "wf"], ["y"])]
    analysis = spa_core.analyze_onnx(make_model(nodes, {"x": (1, 2, 7, 7)}, ["y"], inits))
    (c,) = find_consumers(analysis)
    assert c.op == "MatMul" and c.bias is None
    (blocks,) = c.blocks.values()
    np.testing.assert_array_equal(blocks, np.arange(100).reshape(4, 25))


# ----------------------------------------------------------------------------- end to end
def _check_pruned(result, model_kept: dict[str, tuple[int, ...]]) -> None:
    shapes = {t.name: tuple(t.dims) for t in result.onnx.graph.initializer}
    for name, shape in model_kept.items():
        assert shapes[name] == shape
    analysis = result.analysis
    dense = with_initializers(analysis.graph.model, result.extras["compensated"])
    graph = Graph(dense, analysis.graph.shapes, analysis.graph.dtypes)
    reference = zeroed_reference(dataclasses.replace(analysis, graph=graph), result.removed)
    x = RNG.standard_normal((2, 3, 9, 9)).astype(np.float32)
    assert compare_outputs(reference, result.onnx, {"x": x}) < 1e-4


@pytest.mark.parametrize("synth", ["inversion", "inversion-bn", "bn", "gaussian"])
def test_data_free_pruning_runs_and_matches_the_compensated_model(synth):
    result = prune_obspa(_conv_model(), ratio=0.5, synth=synth, samples=8, batch_size=4, progress=False,
                         allocation="uniform")
    _check_pruned(result, {"w1": (4, 3, 3, 3), "w2": (3, 4, 3, 3), "wf": (4, 3), "m2": (3,)})
    assert result.plan.options["criterion"] == "obspa"
    assert result.plan.options["obspa"]["data"] == f"synthetic ({synth})"
    assert set(result.report.timings) >= {"analyse", "hessians", "order", "compensate"}


def _bn_input_error(model: onnx.ModelProto, x: np.ndarray) -> float:
    """Mean over the BatchNorms' channels of the batch-vs-running statistics error, in running stds."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    values = run_model(model, {"x": x}, extra_outputs=[n.input[0] for n in bns])
    errors = []
    for n in bns:
        v = values[n.input[0]]
        std = np.sqrt(inits[n.input[4]] + 1e-5)
        errors.append(np.mean(((v.mean(axis=(0, 2, 3)) - inits[n.input[3]]) / std) ** 2
                              + (v.std(axis=(0, 2, 3)) / std - 1) ** 2))
    return float(np.mean(errors))


def test_inverted_inputs_give_every_batchnorm_its_running_statistics():
    model = _conv_model()
    graph = spa_core.analyze_onnx(model).graph
    noise = gaussian_feeds(graph, 8, seed=3)["x"]
    inverted = inverted_feeds(graph, {"x": noise}, batch=2, steps=150)["x"]
    assert inverted.shape == noise.shape and inverted.dtype == np.float32
    before = np.mean([_bn_input_error(model, noise[i : i + 2]) for i in range(0, 8, 2)])
    after = np.mean([_bn_input_error(model, inverted[i : i + 2]) for i in range(0, 8, 2)])
    assert after < 0.1 * before


def test_inversion_falls_back_to_bn_when_the_executor_lacks_an_operator():
    model = _conv_model()
    model.graph.node[2].op_type = "Celu"  # an operator the ONNX torch executor has no rule for
    with pytest.warns(UserWarning, match="Celu"):
        result = prune_obspa(model, ratio=0.5, samples=8, batch_size=4, progress=False)
    assert result.plan.options["obspa"]["data"] == "synthetic (bn)"


def test_grouped_consumer_and_macs_target():
    result = prune_obspa(_conv_model(groups=2), macs_target=0.4, samples=8, batch_size=4, progress=False)
    assert result.report.macs_reduction >= 0.4
    assert result.plan.options["obspa"]["macs_reduction"] == pytest.approx(result.report.macs_reduction)
    _check_pruned(result, {})


def test_compensation_beats_plain_removal_on_the_calibration_data():
    model = _conv_model()
    x = RNG.standard_normal((64, 3, 9, 9)).astype(np.float32)
    result = prune_obspa(model, ratio=0.5, calibration={"x": x}, batch_size=2, progress=False,
                         allocation="global")
    plain = spa_core.apply_plan_onnx(model, result.plan).onnx  # same channels, no compensation
    feeds = {"x": x[:2]}
    dense = run_model(result.analysis.graph.model, feeds)["y"]
    err_obs = np.abs(run_model(result.onnx, feeds)["y"] - dense).mean()
    err_plain = np.abs(run_model(plain, feeds)["y"] - dense).mean()
    assert err_obs < 0.7 * err_plain


def _mlp() -> onnx.ModelProto:
    """x(64, 6) -> MatMul(10) -> Relu -> MatMul(8) -> Relu -> MatMul(3): two consumers in a chain."""
    inits = {"w1": RNG.standard_normal((6, 10)).astype(np.float32), "w2": RNG.standard_normal((10, 8)).astype(np.float32),
             "w3": RNG.standard_normal((8, 3)).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"]), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"]), helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("MatMul", ["r2", "w3"], ["y"])]
    return make_model(nodes, {"x": (64, 6)}, ["y"], inits)


def test_sequential_compensation_fits_the_dense_output_from_the_pruned_inputs():
    """The second consumer is re-fitted on what the pruned, compensated first one produces:
    its kept weights are the least-squares map from those inputs to the dense output."""
    model = _mlp()
    x = RNG.standard_normal((64, 6)).astype(np.float32)
    result = prune_obspa(model, ratio=0.5, calibration={"x": x}, damp=0.0, allocation="uniform", progress=False)
    inits = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    new = {k: v.astype(np.float64) for k, v in result.extras["compensated"].items()}
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    x64 = x.astype(np.float64)
    r1, r2 = relu(x64 @ inits["w1"]), relu(relu(x64 @ inits["w1"]) @ inits["w2"])
    kept1 = np.flatnonzero(np.abs(new["w2"]).sum(axis=1) > 0)
    kept2 = np.flatnonzero(np.abs(new["w3"]).sum(axis=1) > 0)
    assert len(kept1) == 5 and len(kept2) == 4
    # first consumer: nothing upstream changed, the plain least-squares (OBS) fit
    np.testing.assert_allclose(new["w2"][kept1], np.linalg.lstsq(r1[:, kept1], r1 @ inits["w2"], rcond=None)[0], atol=1e-5)
    # second consumer: fitted on the pruned model's activations, towards the dense output
    r2_pruned = relu(r1[:, kept1] @ new["w2"][kept1])
    best = np.linalg.lstsq(r2_pruned[:, kept2], r2 @ inits["w3"], rcond=None)[0]
    np.testing.assert_allclose(new["w3"][kept2], best, atol=1e-5)
    independent = prune_obspa(model, ratio=0.5, calibration={"x": x}, damp=0.0, allocation="uniform",
                              compensation="independent", progress=False)
    dense = r2 @ inits["w3"]
    err = {name: np.abs(run_model(r.onnx, {"x": x})["y"] - dense).mean() for name, r in
           (("sequential", result), ("independent", independent))}
    assert err["sequential"] < err["independent"]


@pytest.mark.parametrize("compensation", ["sequential", "independent"])
def test_both_compensations_match_the_compensated_model(compensation):
    result = prune_obspa(_conv_model(), ratio=0.5, synth="bn", samples=8, batch_size=4, progress=False,
                         allocation="uniform", compensation=compensation)
    _check_pruned(result, {"w1": (4, 3, 3, 3), "w2": (3, 4, 3, 3), "wf": (4, 3), "m2": (3,)})
    assert result.plan.options["obspa"]["compensation"] == compensation


def test_options_are_checked():
    model = _conv_model()
    for kwargs in ({"synth": "pink"}, {"allocation": "best"}, {"compensation": "fast"}, {"ratio": 1.2}, {"macs_target": -0.1}, {"damp": -1},
                   {"inversion_steps": -1}, {"samples": 0}):
        with pytest.raises(InvalidOptionError):
            prune_obspa(model, **kwargs)
    with pytest.raises(InvalidOptionError):
        prune_obspa(model, calibration={"nope": np.zeros((2, 3, 9, 9), np.float32)})
