"""``spa inspect``: groups summarised by layer (where the channels go), barriers by operator."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
from report_models import cumsum_model

import spa_core
from spa_core.inspect_view import (
    CONSUMES,
    PRODUCES,
    analysis_table,
    analysis_to_dict,
    barriers,
    group_layers,
    layer_label,
)


def test_layer_label():
    assert layer_label(["layer1.0.conv1.weight", "layer1.0.conv1.bias"], "/x/Conv") == "layer1.0.conv1"
    assert layer_label(["bn.weight", "bn.bias", "bn.running_mean"], "/bn/Bn") == "bn"
    assert layer_label(["onnx::Conv_12"], "/conv/Conv") == "/conv/Conv"
    assert layer_label(["a.weight", "b.weight"], "/tied/MatMul") == "/tied/MatMul"
    assert layer_label(["model/dense/kernel"], "dense/MatMul") == "dense/MatMul"


def test_groups_by_layer_and_role():
    analysis = spa_core.analyze_onnx(cumsum_model())
    assert [g.size for g in analysis.groups] == [8, 12]
    roles = [{(x.layer, x.role) for x in group_layers(analysis, g)} for g in analysis.groups]
    assert roles[0] == {("stem", PRODUCES), ("mid", CONSUMES)}
    assert roles[1] == {("mid", PRODUCES), ("body", CONSUMES)}
    stem = next(x for x in group_layers(analysis, analysis.groups[0]) if x.layer == "stem")
    assert stem.node == "/stem/Conv" and stem.op == "Conv"
    assert sorted(stem.members) == ["stem.bias:0", "stem.weight:0"]


def test_barriers_with_operators():
    analysis = spa_core.analyze_onnx(cumsum_model())
    rows = {b.operator: b for b in barriers(analysis)}
    assert rows["CumSum"].nodes == ["/body/CumSum"] and rows["CumSum"].channels == 32
    assert "no propagation rule" in rows["CumSum"].reason
    assert rows["(graph output)"].nodes == ["y"] and rows["(graph output)"].channels == 4
    assert rows["(graph input)"].nodes == ["x"] and rows["(graph input)"].channels == 3
    assert sum(b.channels for b in rows.values()) == sum(analysis.blocked_reasons.values())


def test_dict_and_table():
    analysis = spa_core.analyze_onnx(cumsum_model())
    data = analysis_to_dict(analysis)
    json.dumps(data)
    assert data["prunable_channels"] == 20 and len(data["groups"]) == 2
    g0 = data["groups"][0]
    assert g0["produced_by"] == ["stem"] and g0["consumed_by"] == ["mid"] and g0["carried_by"] == []
    assert g0["nodes"] == ["/stem/Conv", "/mid/Conv"]  # kept for tools that read it
    assert data["unknown_operators"] == {"CumSum": 1}
    assert data["unknown_operator_nodes"] == {"CumSum": ["/body/CumSum"]}
    assert {b["operator"] for b in data["barrier_details"]} == {"CumSum", "(graph output)", "(graph input)"}
    table = analysis_table(analysis)
    assert "2 channel groups, 20 prunable channels in 3 layers" in table
    assert "from stem" in table and "into mid" in table and "into body" in table
    assert "CumSum x1: /body/CumSum" in table
    assert "graph output" in table and "39 channels holding parameters" in table


def test_table_shortens_long_lists():
    from spa_core.inspect_view import shorten

    assert shorten([f"n{i}" for i in range(7)], 3) == "n0, n1, n2, +4 more"
    assert shorten([]) == "-"


def test_cli_inspect(tmp_path):
    path = tmp_path / "c.onnx"
    onnx.save(cumsum_model(), path)
    run = subprocess.run([sys.executable, "-m", "spa_core.cli", "inspect", path, "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["groups"][1]["consumed_by"] == ["body"]
