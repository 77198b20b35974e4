"""Workflows: targets (ratio, MACs, parameters), iterative pruning, pruning at init,
fine-tuning helpers and the CLI pieces. Small models, numbers checked, no real training."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn as nn

from spa_core.errors import InvalidOptionError
from spa_core.testing import assert_oracle
from spa_core.workflows import (
    PruningSession,
    Target,
    as_target,
    finetune,
    iterative_prune,
    prune_at_init,
    prune_then_finetune,
    prune_to_target,
    solve_ratio,
)
from spa_core.workflows import cli as wcli

torch.set_num_threads(2)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()


X = torch.randn(1, 1, 12, 12)
RNG = np.random.default_rng(0)
DATA = [(RNG.standard_normal((8, 1, 12, 12)).astype(np.float32), RNG.integers(0, 10, 8)) for _ in range(3)]


# ------------------------------------------------------------------ targets
def test_target_text_forms():
    assert as_target(0.3) == Target("ratio", 0.3)
    assert as_target("ratio=0.25") == Target("ratio", 0.25)
    assert as_target("macs=50%") == Target("macs", 0.5)
    assert as_target("params=1.5M") == Target("params", 1.5e6)
    assert as_target("macs=2e8") == Target("macs", 2e8)
    assert Target("params", 0.1).budget(5000) == 500 and Target("params", 800).budget(5000) == 800
    for bad in ("flops=0.5", "ratio=1.2", "params=-3", "macs=lots"):
        with pytest.raises(InvalidOptionError):
            as_target(bad)


def test_session_counts_equal_the_pruned_report():
    session = PruningSession.open(small_cnn(), X)
    assert session.original == (session.counts(0.0).params, session.counts(0.0).macs)
    result = session.prune(0.5)
    counts = session.counts(0.5)
    assert (counts.params, counts.macs) == (result.report.params_after, result.report.macs_after)
    assert counts.params < session.original[0]


@pytest.mark.parametrize("kind", ["params", "macs"])
def test_budget_is_met_by_the_largest_model_that_fits(kind: str):
    session = PruningSession.open(small_cnn(), X, criterion="l1")
    target = Target(kind, 0.4)
    ratio = solve_ratio(session, target)
    measure = (lambda c: c.params) if kind == "params" else (lambda c: c.macs)
    budget = 0.4 * session.original[0 if kind == "params" else 1]
    assert measure(session.counts(ratio)) <= budget
    assert measure(session.counts(ratio - 0.07)) > budget  # one channel less pruning would not fit
    result = prune_to_target(small_cnn(), X, target=f"{kind}=40%")
    assert getattr(result.report, f"{kind}_after") <= budget


def test_unreachable_budget_is_an_error_naming_the_floor():
    with pytest.raises(InvalidOptionError, match="cannot be met"):
        prune_to_target(small_cnn(), X, target="params=10")


# ------------------------------------------------------------------ iterative
def test_iterative_pruning_ends_at_one_shot_size_and_fine_tunes_between_steps():
    calls = []

    def recover(model: nn.Module, step: int) -> nn.Module:
        calls.append((step, sum(p.numel() for p in model.parameters())))
        return model

    one_shot = prune_to_target(small_cnn(), X, target=0.5, criterion="taylor", data=DATA)
    done = iterative_prune(small_cnn(), X, target=0.5, steps=3, criterion="taylor", data=DATA, finetune=recover)
    params = [s.params for s in done.steps]
    assert [c[0] for c in calls] == [1, 2, 3]
    assert params == sorted(params, reverse=True) and len(set(params)) == 3
    assert params[-1] <= one_shot.report.params_after
    assert params[-1] >= 0.85 * one_shot.report.params_after
    with torch.no_grad():
        assert done.model(X).shape == (1, 10)


def test_prune_then_finetune_with_the_builtin_loop_changes_weights():
    model = small_cnn()
    done = prune_then_finetune(model, X, target="macs=60%", train_data=DATA, epochs=1, lr=1e-2, criterion="l1")
    pruned_only = prune_to_target(small_cnn(), X, target="macs=60%")
    before = pruned_only.model.state_dict()
    after = done.model.state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))
    assert done.result.report.macs_after <= 0.6 * done.macs_before


# ------------------------------------------------------------------ at initialisation
@pytest.mark.parametrize("criterion", ["snip", "grasp", "crop"])
def test_prune_at_init_returns_a_smaller_untrained_model(criterion: str):
    model = small_cnn()
    result = prune_at_init(model, X, data=DATA, criterion=criterion, target="params=50%", batches=2)
    assert result.report.params_after <= 0.5 * result.report.params_before
    kept = result.plan.parameters["0.weight"].kept[0]
    np.testing.assert_array_equal(result.model[0].weight.detach().numpy(), model[0].weight.detach().numpy()[kept])
    with torch.no_grad():
        assert result.model(X).shape == (1, 10)


def test_prune_at_init_in_steps_rescoring_the_pruned_network():
    model = small_cnn()
    one_shot = prune_at_init(small_cnn(), X, data=DATA, criterion="snip", target="params=40%", batches=2)
    stepped = prune_at_init(model, X, data=DATA, criterion="snip", target="params=40%", batches=2, steps=3)
    report = stepped.report
    assert report.params_before == one_shot.report.params_before  # the report compares with the original
    assert report.params_after <= 0.4 * report.params_before
    assert report.params_after >= 0.3 * report.params_before
    assert_oracle(stepped)  # the last step equals its input model with the removed channels zeroed
    with torch.no_grad():
        assert stepped.model(X).shape == (1, 10)
    with pytest.raises(InvalidOptionError, match="steps"):
        prune_at_init(small_cnn(), X, data=DATA, criterion="snip", target=0.5, steps=0)


def test_materialised_calibration_keeps_batch_statistics_and_the_batch_limit():
    from dataclasses import replace

    from spa_core.gradients.calibration import as_calibration
    from spa_core.workflows.session import materialise

    cal = replace(as_calibration(DATA, "cross_entropy"), max_batches=2, batch_statistics=True)
    kept = materialise(cal, None)
    assert kept.batch_statistics and len(kept.batches()) == 2 and kept.loss == "cross_entropy"


def test_prune_at_init_reads_only_the_first_batches():
    seen = []

    def batches():
        for i, batch in enumerate(DATA):
            seen.append(i)
            yield batch

    prune_at_init(small_cnn(), X, data=batches(), criterion="snip", target=0.5, batches=1)
    assert seen == [0, 1]  # the second is read to find the end of the first; no more


# ------------------------------------------------------------------ fine-tuning helpers
def loss_on(model, x, y) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)))


def test_torch_finetune_lowers_the_training_loss():
    model = small_cnn()
    x, y = DATA[0]
    before = loss_on(model, x, y)
    finetune(model, [(x, y)], epochs=20, lr=1e-2)
    assert loss_on(model, x, y) < 0.7 * before
    assert not model.training


def test_keras_finetune_lowers_the_training_loss():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    x = RNG.standard_normal((16, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 16)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = float(ce(y, model(x)))
    finetune(model, [(x, y)], epochs=30, lr=3e-2)
    assert float(ce(y, model(x))) < 0.7 * before


def test_flax_finetune_lowers_the_training_loss_nnx_and_linen():
    pytest.importorskip("flax")
    import jax
    import optax
    from flax import linen, nnx

    x = RNG.standard_normal((16, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 16)

    def ce(logits):
        return float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())

    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    before = ce(model(x))
    finetune(model, [(x, y)], epochs=30, lr=3e-2)
    assert ce(model(x)) < 0.7 * before
    module = linen.Dense(3)
    variables = module.init(jax.random.key(0), x)
    before = ce(module.apply(variables, x))
    tuned = finetune((module, variables), [(x, y)], framework="jax", epochs=30, lr=3e-2)
    assert ce(tuned(x)) < 0.7 * before


def test_finetune_rejects_unknown_settings():
    with pytest.raises(InvalidOptionError, match="unknown fine-tuning setting"):
        finetune(small_cnn(), DATA, epoch=3)


# ------------------------------------------------------------------ CLI pieces
def cli_args(*argv: str) -> argparse.Namespace:
    from spa_core.cli import build_parser

    return build_parser().parse_args(["prune", "m.onnx", "-o", "out.onnx", *argv])


def test_cli_workflow_on_an_onnx_file(tmp_path):
    import zoo  # noqa: F401  (tests/ on the path)
    from zoo import export

    path = tmp_path / "calib.npz"
    np.savez(path, x=np.concatenate([d[0] for d in DATA]), y=np.concatenate([d[1] for d in DATA]))
    proto = export(small_cnn(), X)
    args = cli_args("--criterion", "snip", "--data", str(path), "--batch-size", "8",
                    "--calibration-batches", "2", "--target", "params=50%", "--steps", "2")
    assert wcli.wants_workflow(args)
    assert len(wcli.calibration_from_args(args).batches()) == 2
    result = wcli.run_workflow(args, proto, framework="onnx")
    original = PruningSession.open(proto).original[0]
    assert result.report.params_after <= 0.5 * original
    steps = result.extras["workflow_steps"]
    assert len(steps) == 2 and steps[1]["params"] < steps[0]["params"]
    kwargs = wcli.workflow_kwargs(cli_args("--criterion", "snip", "--data", str(path)))
    assert set(kwargs) == {"data", "loss"}


def test_cli_prune_at_init_scores_with_batch_statistics(tmp_path):
    from zoo import export

    path = tmp_path / "calib.npz"
    np.savez(path, x=np.concatenate([d[0] for d in DATA]), y=np.concatenate([d[1] for d in DATA]))
    proto = export(small_cnn(), X)
    flags = ("--criterion", "snip", "--data", str(path), "--batch-size", "8", "--target", "params=50%")
    at_init = cli_args(*flags, "--at-init")
    assert wcli.calibration_from_args(at_init).batch_statistics
    assert not wcli.calibration_from_args(cli_args(*flags)).batch_statistics
    result = wcli.run_workflow(at_init, proto, framework="onnx")
    expected = prune_at_init(proto, data=DATA, criterion="snip", target="params=50%", batches=4)
    assert result.plan.groups == expected.plan.groups  # the same channels as the Python API's prune_at_init
    plain = wcli.run_workflow(cli_args(*flags), proto, framework="onnx")
    assert [g.scores for g in plain.plan.groups] != [g.scores for g in result.plan.groups]
    with pytest.raises(InvalidOptionError, match="--data"):
        wcli.calibration_from_args(cli_args("--criterion", "snip", "--at-init"))


def test_cli_data_errors_name_the_problem(tmp_path):
    with pytest.raises(InvalidOptionError, match="neither a file"):
        wcli.load_arrays(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "bad.npz", a=np.zeros(3))
    with pytest.raises(InvalidOptionError, match="must hold arrays"):
        wcli.load_arrays(str(tmp_path / "bad.npz"))


# ------------------------------------------------------------------ the real command line
def _cli_files(tmp_path):
    import onnx
    from zoo import export

    model, data = tmp_path / "m.onnx", tmp_path / "calib.npz"
    onnx.save(export(small_cnn(), X), model)
    np.savez(data, x=np.concatenate([d[0] for d in DATA]), y=np.concatenate([d[1] for d in DATA]))
    return model, data


def _assert_cli_output_is_the_oracle_pruning(model, out, plan) -> None:
    """The written model is the plan applied to the original, and that pruning holds the oracle."""
    import onnx

    import spa_core
    from spa_core.oracle import compare_outputs
    from spa_core.plan import Plan
    from spa_core.testing import assert_oracle

    again = spa_core.apply_plan_onnx(str(model), Plan.load(plan))
    assert_oracle(again)
    feeds = {again.onnx.graph.input[0].name: RNG.standard_normal((1, 1, 12, 12)).astype(np.float32)}
    assert compare_outputs(again.onnx, onnx.load(out), feeds) < 1e-6


def _counts(path) -> tuple[int, int]:
    from spa_core.workflows import PruningSession

    return PruningSession.open(str(path)).original


def test_spa_prune_runs_a_data_driven_multi_step_workflow(tmp_path, capsys):
    from spa_core.cli import main

    model, data = _cli_files(tmp_path)
    out = tmp_path / "out.onnx"
    rc = main(["prune", str(model), "-o", str(out), "--criterion", "snip", "--data", str(data),
               "--batch-size", "8", "--target", "params=50%", "--steps", "2"])
    assert rc == 0 and out.is_file()
    assert _counts(out)[0] <= 0.5 * _counts(model)[0]
    text = capsys.readouterr().out
    assert "step 1:" in text and "step 2:" in text


def test_spa_prune_with_data_for_a_plain_ratio(tmp_path):
    from spa_core.cli import main

    model, data = _cli_files(tmp_path)
    out = tmp_path / "out.onnx"
    plan = tmp_path / "plan.json"
    assert main(["prune", str(model), "-o", str(out), "--criterion", "taylor", "--data", str(data),
                 "--ratio", "0.25", "--plan-out", str(plan), "-q"]) == 0
    assert _counts(out)[0] < _counts(model)[0]
    _assert_cli_output_is_the_oracle_pruning(model, out, plan)


def test_spa_prune_obspa_data_free_and_with_data(tmp_path):
    from spa_core.cli import main

    model, data = _cli_files(tmp_path)
    import onnx

    from spa_core.obspa import prune_obspa
    from spa_core.oracle import compare_outputs

    x = np.load(data)["x"]
    feeds = {onnx.load(model).graph.input[0].name: RNG.standard_normal((1, 1, 12, 12)).astype(np.float32)}
    for extra, compensation in (([], "sequential"), (["--data", str(data)], "sequential"),
                                (["--data", str(data), "--compensation", "independent"], "independent")):
        out = tmp_path / f"obspa{len(extra)}.onnx"
        assert main(["prune", str(model), "-o", str(out), "--criterion", "obspa", "--target", "macs=50%",
                     "--samples", "8", "--batch-size", "4", "-q", *extra]) == 0
        assert _counts(out)[1] <= 0.5 * _counts(model)[1]
        # the written model is what the Python API computes with the same options
        expected = prune_obspa(str(model), macs_target=0.5, calibration=x if extra else None, samples=8,
                               batch_size=4, compensation=compensation, progress=False)
        assert compare_outputs(expected.onnx, onnx.load(out), feeds) < 1e-6


def test_spa_prune_obspa_refuses_what_it_cannot_do(tmp_path, capsys):
    from spa_core.cli import main

    model, _ = _cli_files(tmp_path)
    out = tmp_path / "out.onnx"
    assert main(["prune", str(model), "-o", str(out), "--criterion", "obspa", "--target", "params=50%"]) == 2
    assert "not a params budget" in capsys.readouterr().err
    assert main(["prune", str(model), "-o", str(out), "--criterion", "obspa", "--steps", "2"]) == 2
    assert "one step" in capsys.readouterr().err
    assert not out.exists()
