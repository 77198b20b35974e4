"""The command line: real runs, one-line errors, non-zero exits, no output on failure."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import zoo
from onnx import helper
from onnx_builders import conv_sandwich

import spa_core
from spa_core.runtime import random_inputs, run_model


def spa(*args):
    return subprocess.run([sys.executable, "-m", "spa_core.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "resnet.onnx"
    model, x = zoo.build("resnet_basic")
    onnx.save(zoo.export(model, x), path)
    return path


def test_prune_writes_model_and_plan(resnet_file, tmp_path):
    out, plan = tmp_path / "pruned.onnx", tmp_path / "plan.json"
    run = spa("prune", resnet_file, "-o", out, "--ratio", "0.5", "--criterion", "l2", "--plan-out", plan)
    assert run.returncode == 0, run.stderr
    assert "MACs" in run.stdout and "parameters" in run.stdout
    pruned = onnx.load(out)
    data = json.loads(plan.read_text())
    assert data["spa_plan_version"] == 1 and data["options"]["criterion"] == "l2"
    # the plan re-applied in Python reproduces the file exactly
    again = spa_core.apply_plan_onnx(resnet_file, spa_core.Plan.load(plan))
    feeds = random_inputs(pruned)
    a, b = run_model(pruned, feeds), run_model(again.onnx, feeds)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_global_round_to_and_ignore(resnet_file, tmp_path):
    out = tmp_path / "g.onnx"
    run = spa("prune", resnet_file, "-o", out, "--ratio", "0.3", "--global", "--round-to", "8", "--ignore", "stem.0.weight")
    assert run.returncode == 0, run.stderr
    pruned = {t.name: list(t.dims) for t in onnx.load(out).graph.initializer}
    assert pruned["stem.0.weight"][0] == 16  # ignored group kept whole
    for name, dims in pruned.items():
        if name.endswith("conv1.weight"):
            assert dims[0] % 8 == 0


def test_inspect_table_and_json(resnet_file):
    run = spa("inspect", resnet_file)
    assert run.returncode == 0 and "channel groups" in run.stdout and "graph output" in run.stdout
    data = json.loads(spa("inspect", resnet_file, "--json").stdout)
    assert len(data["groups"]) == 9 and data["prunable_channels"] == 336


def test_criteria_lists_builtins():
    run = spa("criteria")
    assert run.returncode == 0
    for name in ("l1", "l2", "random"):
        assert name in run.stdout


def _unprunable(tmp_path):
    m = conv_sandwich([helper.make_node("Softmax", ["a"], ["b"], axis=1)], 8, opset=13)
    path = tmp_path / "softmax.onnx"
    onnx.save(m, path)
    return path


@pytest.mark.parametrize(
    "case",
    ["missing", "corrupt", "truncated", "ratio_high", "ratio_negative", "ratio_text", "criterion", "unprunable",
     "bad_shape", "wrong_input_name"],
)
def test_bad_input_one_line_nonzero_no_output(case, resnet_file, tmp_path):
    out = tmp_path / "out.onnx"
    model, extra = resnet_file, []
    if case == "missing":
        model = tmp_path / "nope.onnx"
    elif case == "corrupt":
        model = tmp_path / "corrupt.onnx"
        model.write_bytes(b"this is not a model at all")
    elif case == "truncated":
        model = tmp_path / "trunc.onnx"
        model.write_bytes(resnet_file.read_bytes()[:5000])
    elif case == "ratio_high":
        extra = ["--ratio", "1.0"]
    elif case == "ratio_negative":
        extra = ["--ratio", "-0.1"]
    elif case == "ratio_text":
        extra = ["--ratio", "half"]
    elif case == "criterion":
        extra = ["--criterion", "nonexistent"]
    elif case == "unprunable":
        model = _unprunable(tmp_path)
    elif case == "bad_shape":
        extra = ["--input-shape", "input:1,3,abc"]
    elif case == "wrong_input_name":
        extra = ["--input-shape", "images:1,3,32,32"]
    run = spa("prune", model, "-o", out, *extra)
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("spa") and "error" in lines[0]
    assert "Traceback" not in run.stderr
    assert list(tmp_path.glob("out.onnx*")) == [] and not list(tmp_path.glob(".out.onnx*"))


def test_an_interrupt_during_an_extension_import_counts_as_an_interrupt():
    """Ctrl-C while onnxruntime initialises surfaces as its ImportError: still an interrupt."""
    from spa_core.cli import _caused_by_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None
    except ImportError as exc:
        assert not _caused_by_interrupt(exc.__cause__)  # from None: the chain is cut
        assert _caused_by_interrupt(exc)  # __context__ still records the interrupt
    assert not _caused_by_interrupt(ValueError("unrelated"))
