"""MXNet adapter pieces that run without MXNet: environment discovery, the symbol width
rules, shape parsing, bindings and the plugin's "not mine" answers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from spa_mxnet import MXNetModel, runner
from spa_mxnet.bindings import bind_parameters
from spa_mxnet.model import normalise_shapes, prefix_of
from spa_mxnet.pipeline import parse_shapes
from spa_mxnet.symbol_rules import SymbolRewriteError, rewrite_symbol

from spa_core.errors import FrameworkError, InvalidModelError, InvalidOptionError


# ---------------------------------------------------------------- environment discovery
def test_missing_env_names_the_setup_command(monkeypatch, tmp_path):
    monkeypatch.delenv("SPA_MXNET_PYTHON", raising=False)
    monkeypatch.setattr(runner, "REPO_DIR", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FrameworkError) as info:
        runner.mxnet_python()
    message = str(info.value)
    assert message == (
        f"MXNet's environment {tmp_path / '.venv-mxnet'} does not exist; create it with: "
        f"bash {runner.SETUP_SCRIPT}"
    )
    assert "\n" not in message


def test_missing_env_stops_export_before_anything_runs(monkeypatch, tmp_path):
    from spa_mxnet.pipeline import export_mxnet

    monkeypatch.delenv("SPA_MXNET_PYTHON", raising=False)
    monkeypatch.setattr(runner, "REPO_DIR", tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m-symbol.json").write_text("{}")
    (tmp_path / "m-0000.params").write_bytes(b"")
    with pytest.raises(FrameworkError, match="setup_mxnet_env.sh"):
        export_mxnet(MXNetModel.from_prefix(tmp_path / "m", (1, 3, 8, 8)))


def test_bad_override_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("SPA_MXNET_PYTHON", str(tmp_path / "nope"))
    with pytest.raises(FrameworkError, match="SPA_MXNET_PYTHON points to"):
        runner.mxnet_python()


def test_missing_files_are_invalid_model(tmp_path):
    from spa_mxnet.pipeline import export_mxnet

    with pytest.raises(InvalidModelError, match="symbol file not found"):
        export_mxnet(MXNetModel.from_prefix(tmp_path / "absent", (1, 3, 8, 8)))


# ---------------------------------------------------------------- shapes and names
def test_shape_forms():
    assert parse_shapes("1,3,32,32") == [1, 3, 32, 32]
    assert parse_shapes("data=1,3,8,8;mask=1,8") == {"data": [1, 3, 8, 8], "mask": [1, 8]}
    with pytest.raises(InvalidOptionError):
        parse_shapes("1,three")
    assert normalise_shapes((1, 3, 8, 8), ["data"]) == {"data": [1, 3, 8, 8]}
    assert normalise_shapes([(1, 2), (3,)], ["a", "b"]) == {"a": [1, 2], "b": [3]}
    with pytest.raises(ValueError, match="'b' needs a static shape"):
        normalise_shapes({"a": (1,)}, ["a", "b"])
    with pytest.raises(ValueError, match="not a data input"):
        normalise_shapes({"a": (1,), "zz": (2,)}, ["a"])
    assert prefix_of("x/net-symbol.json") == "x/net" == prefix_of("x/net-0000.params") == prefix_of("x/net")


# ---------------------------------------------------------------- symbol width rules
def _graph(num_group: int = 1) -> dict:
    def null(name: str, shape: str) -> dict:
        return {"op": "null", "name": name, "attrs": {"__shape__": shape}, "inputs": []}

    return {"nodes": [
        {"op": "null", "name": "data", "inputs": []},
        null("c_weight", f"(8, {8 // num_group}, 3, 3)"),
        {"op": "Convolution", "name": "c", "attrs": {"num_filter": "8", "num_group": str(num_group), "kernel": "(3, 3)"},
         "inputs": [[0, 0, 0], [1, 0, 0]]},
        null("fc_weight", "(10, 0)"),
        {"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": "10"}, "inputs": [[2, 0, 0], [3, 0, 0]]},
    ]}


def test_convolution_and_dense_widths():
    g = _graph()
    changes = rewrite_symbol(g, {"c_weight": (8, 8, 3, 3), "fc_weight": (10, 8)},
                             {"c_weight": (4, 8, 3, 3), "fc_weight": (6, 8)})
    nodes = {n["name"]: n for n in g["nodes"]}
    assert nodes["c"]["attrs"]["num_filter"] == "4"
    assert nodes["c_weight"]["attrs"]["__shape__"] == "(4, 8, 3, 3)"
    assert nodes["fc"]["attrs"]["num_hidden"] == "6"
    assert nodes["fc_weight"]["attrs"]["__shape__"] == "(6, 0)"  # MXNet's unknown dim stays unknown
    assert {(c["node"], c["attr"]) for c in changes} == {
        ("c", "num_filter"), ("c_weight", "__shape__"), ("fc", "num_hidden"), ("fc_weight", "__shape__")}


def test_depthwise_group_from_onnx_or_inferred():
    for groups in ({"c_weight": 5}, {}):
        g = _graph(num_group=8)
        rewrite_symbol(g, {"c_weight": (8, 1, 3, 3)}, {"c_weight": (5, 1, 3, 3)}, groups)
        conv = g["nodes"][2]["attrs"]
        assert (conv["num_filter"], conv["num_group"]) == ("5", "5")


def test_grouped_conv_pruned_inside_groups_needs_onnx():
    g = _graph(num_group=2)
    with pytest.raises(SymbolRewriteError, match="num_group"):
        rewrite_symbol(g, {"c_weight": (8, 4, 3, 3)}, {"c_weight": (6, 2, 3, 3)})
    rewrite_symbol(g, {"c_weight": (8, 4, 3, 3)}, {"c_weight": (6, 2, 3, 3)}, {"c_weight": 2})
    assert g["nodes"][2]["attrs"]["num_group"] == "2"


# ---------------------------------------------------------------- bindings
def test_bindings_by_name_checked_by_value_and_by_value_when_renamed():
    rng = np.random.default_rng(0)
    w, b, fc = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3, 1, 1), (4,), (5, 4)))
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b + 1, "b"),
             numpy_helper.from_array(fc.T.copy(), "renamed"), numpy_helper.from_array(np.ones(4, np.float32), "g")]
    graph = helper.make_graph([], "g", [], [], initializer=inits)
    model = helper.make_model(graph)
    native = {"w": w, "b": b, "fc": fc, "g": rng.standard_normal(4).astype(np.float32)}
    bindings, problems = bind_parameters(model, native, {"g": "fix_gamma"})
    assert bindings["w"].native_name == "w" and bindings["w"].axes == (0, 1, 2, 3)
    assert "b" not in bindings and problems == ["ONNX initializer b differs from the MXNet parameter of that name"]
    assert bindings["renamed"].native_name == "fc" and bindings["renamed"].axes == (1, 0)
    assert bindings["g"].transform == "fix_gamma"


# ---------------------------------------------------------------- plugin answers "not mine"
def test_plugin_declines_other_frameworks():
    from spa_mxnet import plugin

    from spa_core.types import ExportedModel

    assert plugin.spa_detect_framework(model=object()) is None
    assert plugin.spa_detect_framework(model=MXNetModel("a", "b")) == "mxnet"
    assert plugin.spa_export(model=object(), example_inputs=None, framework="torch", options={}) is None
    ex = ExportedModel(onnx=onnx.ModelProto(), framework="torch")
    assert plugin.spa_apply_plan(model=None, plan=None, exported=ex, pruned_onnx=None, options={}) is None
    assert plugin.spa_load_model(path="model.pt", framework=None, options={}) is None
    assert plugin.spa_load_model(path="x-symbol.json", framework="keras", options={}) is None
    assert plugin.spa_save_model(model=object(), path="x", framework="torch", options={}) is None
    with pytest.raises(InvalidModelError, match="symbol file not found"):
        plugin.spa_load_model(path="missing-symbol.json", framework=None, options={})
