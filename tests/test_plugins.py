"""Plugins: built-ins come through the entry-point group; a third-party package installs on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import conv_sandwich

import spa_core
from spa_core.criteria.base import available_criteria
from spa_core.rules.registry import OpRule

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "spa-example-criterion"


def test_builtin_criteria_are_entry_point_plugins():
    from spa_core.plugins import plugin_manager

    names = {name for name, _ in plugin_manager().list_name_plugin()}
    assert {"magnitude", "random", "onnx"} <= names
    assert {"l1", "l2", "random"} <= set(available_criteria())


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True,
    )
    return target


def _spa(args, extra_path=None):
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = f"{extra_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run([sys.executable, "-m", "spa_core.cli", *args], capture_output=True, text=True, env=env)


def test_example_plugin_shows_up_only_once_installed(installed_plugin, tmp_path):
    assert "linf" not in _spa(["criteria"]).stdout
    listed = _spa(["criteria"], installed_plugin)
    assert listed.returncode == 0 and "linf" in listed.stdout

    model = tmp_path / "m.onnx"
    import onnx

    m = conv_sandwich([onnx.helper.make_node("Relu", ["a"], ["b"])], 8)
    onnx.save(m, model)
    out = tmp_path / "out.onnx"
    run = _spa(["prune", str(model), "-o", str(out), "--criterion", "linf", "--ratio", "0.5"], installed_plugin)
    assert run.returncode == 0, run.stderr
    pruned = onnx.load(out)
    w1 = next(t for t in pruned.graph.initializer if t.name == "w1")
    assert list(w1.dims)[0] == 4


def test_example_plugin_criterion_scores(installed_plugin):
    sys.path.insert(0, str(installed_plugin))
    try:
        from spa_example_criterion import LInfinity
    finally:
        sys.path.remove(str(installed_plugin))
    w = np.array([[1.0, -3.0], [0.5, 0.25], [-2.0, 0.0]])
    np.testing.assert_array_equal(LInfinity().channel_scores("w", w, 0, None), [3.0, 0.5, 2.0])


def test_third_party_rule_replaces_barrier():
    """A rule registered for a custom-domain op makes it prunable (element-wise here)."""
    from onnx import helper

    from spa_core.analysis import analyze
    from spa_core.prepare import prepare
    from spa_core.rules.elementwise import unary
    from spa_core.rules.registry import full_registry

    m = conv_sandwich([helper.make_node("Frob", ["a"], ["b"], domain="acme")], 8)
    m.opset_import.append(helper.make_opsetid("acme", 1))
    # onnx cannot infer a custom op's output shape: the model carries it, as exporters do
    m.graph.value_info.append(helper.make_tensor_value_info("b", 1, [1, 8, 8, 8]))
    assert not spa_core.analyze_onnx(m).groups
    registry = full_registry()
    registry.add(OpRule("acme", "Frob", 1, unary))
    analysis = analyze(prepare(m), registry=registry)
    assert analysis.groups and analysis.groups[0].size == 8
