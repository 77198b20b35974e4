"""MXNet adapter, end to end, against MXNet itself (needs ``.venv-mxnet``).

Networks are built in Gluon inside MXNet's environment (``spa_mxnet.zoo``: a ResNet with
residual adds and projection shortcuts, a MobileNet-style net with depthwise convolutions),
exported, pruned, and the pruned MXNet network is run in MXNet and compared with the
pruned ONNX model in onnxruntime.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from spa_mxnet import MXNetModel
from spa_mxnet.pipeline import apply_plan_mxnet, cli_prune, export_mxnet, run_mxnet
from spa_mxnet.runner import REPO_DIR, SETUP_SCRIPT, mxnet_python, run_worker

import spa_core
from spa_core.errors import InvalidModelError, InvalidOptionError
from spa_core.plan import ParameterPlan, Plan

pytestmark = pytest.mark.mxnet

SHAPE = (2, 3, 16, 16)
NETS = ("resnet", "mobilenet")
TOL = 1e-4
HAS_ENGINE = hasattr(spa_core, "prune_onnx")
needs_engine = pytest.mark.skipif(not HAS_ENGINE, reason="spa_core.prune_onnx (the engine) is not there yet")


@pytest.fixture(scope="session")
def mx_env() -> Path:
    """MXNet's environment, created by the setup script if missing; skip if it cannot be."""
    try:
        return mxnet_python()
    except spa_core.FrameworkError:
        pass
    proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f".venv-mxnet cannot be created by {SETUP_SCRIPT.name}: {last}")
    return mxnet_python()


@pytest.fixture(scope="session")
def built(mx_env: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, MXNetModel]:
    root = tmp_path_factory.mktemp("mxnet_zoo")
    models = {}
    for name in NETS:
        files = run_worker("build", {"name": name, "prefix": str(root / name), "input_shape": list(SHAPE)})
        models[name] = MXNetModel(files["symbol"], files["params"], SHAPE)
    return models


@pytest.fixture(scope="session")
def exported(built: dict[str, MXNetModel]) -> dict[str, spa_core.ExportedModel]:
    return {name: export_mxnet(model) for name, model in built.items()}


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"data": x})[0]


def _symbol_attrs(model: MXNetModel) -> dict[str, dict[str, str]]:
    nodes = json.loads(Path(model.symbol_path).read_text())["nodes"]
    return {n["name"]: n.get("attrs", {}) for n in nodes}


# ---------------------------------------------------------------- export
@pytest.mark.parametrize("name", NETS)
def test_export_runs_like_mxnet(name, built, exported):
    ex = exported[name]
    assert [i.name for i in ex.onnx.graph.input] == ["data"]
    assert ex.input_shapes == {"data": SHAPE}
    assert {o.version for o in ex.onnx.opset_import if o.domain in ("", "ai.onnx")} == {13}
    assert all(n.name for n in ex.onnx.graph.node)
    assert "BatchNormalization" in {n.op_type for n in ex.onnx.graph.node}
    weights = [t.name for t in ex.onnx.graph.initializer if t.name.endswith("_weight")]
    assert weights and all(ex.parameter_map[w].native_name == w for w in weights)
    assert all(b.axes == tuple(range(len(b.axes))) for b in ex.parameter_map.values())
    x = _x()
    mx_out = run_mxnet(built[name], {"data": x})[0]
    np.testing.assert_allclose(_ort(ex.onnx, x), mx_out, rtol=TOL, atol=TOL)


# ---------------------------------------------------------------- hand-made plans
def _even(n: int) -> list[int]:
    return list(range(0, n, 2))


def _handmade(name: str, ex: spa_core.ExportedModel) -> dict[str, dict[int, list[int]]]:
    """Keep every other channel of some groups; {initializer: {axis: kept}}."""
    shapes = {t.name: list(t.dims) for t in ex.onnx.graph.initializer}

    def group(producer: str, bn: str, consumers: list[str], bias: bool = False) -> dict:
        kept = _even(shapes[producer + "_weight"][0])
        sel = {producer + "_weight": {0: kept}}
        if bias:
            sel[producer + "_bias"] = {0: kept}
        for p in ("gamma", "beta", "running_mean", "running_var"):
            sel[f"{bn}_{p}"] = {0: kept}
        for c in consumers:
            axis = 0 if shapes[c][1] == 1 and len(shapes[c]) == 4 else 1  # depthwise: out axis
            sel[c] = {axis: kept}
        return sel

    sel: dict[str, dict[int, list[int]]] = {}
    if name == "resnet":
        for b in range(4):
            p = f"resnet_basicblock{b}_"
            sel |= group(p + "conv0", p + "batchnorm0", [p + "conv1_weight"])
    else:
        sel |= group("mobilenet_conv0", "mobilenet_batchnorm0", ["mobilenet_conv1_weight"])
        for p in ("gamma", "beta", "running_mean", "running_var"):
            sel[f"mobilenet_batchnorm1_{p}"] = {0: _even(8)}
        sel["mobilenet_conv2_weight"] = {1: _even(8)}
        sel |= group("mobilenet_conv4", "mobilenet_batchnorm4", ["mobilenet_dense0_weight"], bias=True)
    return sel


def _plan(ex: spa_core.ExportedModel, sel: dict[str, dict[int, list[int]]]) -> Plan:
    shapes = {t.name: list(t.dims) for t in ex.onnx.graph.initializer}
    return Plan(parameters={n: ParameterPlan(shapes[n], kept) for n, kept in sel.items()})


def _sliced_onnx(ex: spa_core.ExportedModel, sel: dict[str, dict[int, list[int]]]) -> onnx.ModelProto:
    """The expected pruned ONNX: initializers sliced with numpy, depthwise groups reduced."""
    m = onnx.ModelProto()
    m.CopyFrom(ex.onnx)
    for t in m.graph.initializer:
        if t.name in sel:
            a = numpy_helper.to_array(t)
            for axis, kept in sel[t.name].items():
                a = np.take(a, kept, axis=axis)
            t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a), t.name))
    dims = {t.name: list(t.dims) for t in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type == "Conv":
            for attr in node.attribute:
                if attr.name == "group" and attr.i > 1:
                    attr.i = dims[node.input[1]][0]  # depthwise: one group per channel
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("with_onnx", [True, False], ids=["groups-from-onnx", "groups-inferred"])
@pytest.mark.parametrize("name", NETS)
def test_handmade_plan_matches_sliced_onnx(name, with_onnx, built, exported, tmp_path):
    ex = exported[name]
    sel = _handmade(name, ex)
    expected = _sliced_onnx(ex, sel)
    pruned = apply_plan_mxnet(built[name], _plan(ex, sel), ex, expected if with_onnx else None,
                              tmp_path / "pruned")
    assert Path(pruned.symbol_path).name == "pruned-symbol.json"
    x = _x(1)
    mx_out = run_mxnet(pruned, {"data": x})[0]
    ref = _ort(expected, x)
    assert np.max(np.abs(mx_out - ref)) <= TOL
    assert np.max(np.abs(ref - _ort(ex.onnx, x))) > 1e-3  # the pruning changed something
    attrs = _symbol_attrs(pruned)
    if name == "resnet":
        assert attrs["resnet_basicblock0_conv0_fwd"]["num_filter"] == "4"
        assert attrs["resnet_basicblock2_conv0_fwd"]["num_filter"] == "8"
    else:
        assert attrs["mobilenet_conv0_fwd"]["num_filter"] == "4"
        assert attrs["mobilenet_conv1_fwd"]["num_filter"] == "4"
        assert attrs["mobilenet_conv1_fwd"]["num_group"] == "4"
        assert attrs["mobilenet_conv4_fwd"]["num_filter"] == "12"
        assert attrs["mobilenet_dense0_fwd"]["num_hidden"] == "10"
        assert attrs["mobilenet_conv0_weight"]["__shape__"] == "(4, 3, 3, 3)"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left nothing behind


@pytest.mark.parametrize("name", NETS)
def test_empty_plan_is_exact(name, built, exported, tmp_path):
    pruned = apply_plan_mxnet(built[name], Plan(), exported[name], exported[name].onnx, tmp_path / "same")
    x = _x(2)
    np.testing.assert_array_equal(run_mxnet(pruned, {"data": x})[0], run_mxnet(built[name], {"data": x})[0])


def test_plan_for_another_model_is_refused(built, exported, tmp_path):
    ex = exported["resnet"]
    plan = Plan(parameters={"resnet_conv0_weight": ParameterPlan([16, 3, 3, 3], {0: [0, 1]})})
    with pytest.raises(InvalidModelError, match="another model"):
        apply_plan_mxnet(built["resnet"], plan, ex, None, tmp_path / "x")


def test_out_of_range_plan_is_refused(built, exported, tmp_path):
    ex = exported["resnet"]
    plan = Plan(parameters={"resnet_conv0_weight": ParameterPlan([8, 3, 3, 3], {0: [0, 9]})})
    with pytest.raises(InvalidModelError, match="only 8 entries"):
        apply_plan_mxnet(built["resnet"], plan, ex, None, tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_missing_input_shape_is_an_option_error(built):
    model = MXNetModel(built["resnet"].symbol_path, built["resnet"].params_path)
    with pytest.raises(InvalidOptionError, match="'data' needs a static shape"):
        export_mxnet(model)
    with pytest.raises(InvalidOptionError, match="'foo' is not a data input"):
        export_mxnet(model, {"foo": SHAPE})


def test_wrong_input_shape_is_one_sentence(built):
    model = MXNetModel(built["resnet"].symbol_path, built["resnet"].params_path, (2, 4, 16, 16))
    with pytest.raises(spa_core.FrameworkError) as info:
        export_mxnet(model)
    assert str(info.value).startswith("MXNet failed (export): Error in operator resnet_conv0_fwd: Shape inconsistent")
    assert "\n" not in str(info.value)


def test_plugin_round_trip(built, tmp_path):
    from spa_core.plugins import plugin_manager

    hook = plugin_manager().hook
    fw, model = hook.spa_load_model(path=built["mobilenet"].symbol_path, framework=None,
                                    options={"input_shape": "2,3,16,16"})
    assert fw == "mxnet" and hook.spa_detect_framework(model=model) == "mxnet"
    ex = hook.spa_export(model=model, example_inputs=None, framework=fw, options={})
    assert ex.framework == "mxnet" and ex.input_shapes == {"data": SHAPE}
    sel = _handmade("mobilenet", ex)
    pruned = hook.spa_apply_plan(model=model, plan=_plan(ex, sel), exported=ex,
                                 pruned_onnx=_sliced_onnx(ex, sel), options={})
    assert hook.spa_save_model(model=pruned, path=str(tmp_path / "saved-symbol.json"),
                               framework="mxnet", options={}) is True
    assert (tmp_path / "saved-0000.params").is_file()
    x = _x(3)
    again = MXNetModel.from_prefix(tmp_path / "saved")
    np.testing.assert_array_equal(run_mxnet(again, {"data": x})[0], run_mxnet(pruned, {"data": x})[0])


# ---------------------------------------------------------------- with the engine
@needs_engine
@pytest.mark.parametrize("name", NETS)
def test_engine_prune_half(name, built, exported, tmp_path):
    from spa_core.testing import assert_oracle

    ex = exported[name]
    res = spa_core.prune_onnx(ex.onnx, ratio=0.5, criterion="l1", input_shapes=ex.input_shapes)
    assert_oracle(res, rtol=TOL)
    assert res.plan.removed_channels > 0
    pruned = apply_plan_mxnet(built[name], res.plan, ex, res.onnx, tmp_path / "half")
    for seed in range(3):
        x = _x(seed)
        mx_out = run_mxnet(pruned, {"data": x})[0]
        assert np.max(np.abs(mx_out - _ort(res.onnx, x))) <= TOL


@needs_engine
@pytest.mark.parametrize("name", NETS)
def test_engine_ratio_zero_is_exact(name, built, tmp_path):
    summary = cli_prune(built[name].symbol_path, built[name].params_path, tmp_path / "zero",
                        ratio=0.0, input_shape=SHAPE)
    assert summary["removed_channels"] == 0
    assert summary["params_after"] == summary["params_before"]
    x = _x(4)
    np.testing.assert_array_equal(
        run_mxnet(MXNetModel.from_prefix(tmp_path / "zero"), {"data": x})[0],
        run_mxnet(built[name], {"data": x})[0],
    )


@needs_engine
def test_cli_prune_writes_everything(built, tmp_path):
    summary = cli_prune(built["resnet"].symbol_path, None, tmp_path / "out" / "r50", ratio=0.5,
                        input_shape="2,3,16,16")
    for key in ("symbol", "params", "onnx", "plan"):
        assert Path(summary[key]).is_file(), key
    assert summary["verify_max_abs_diff"] <= TOL
    assert summary["params_after"] < summary["params_before"]
    Plan.load(summary["plan"])


@needs_engine
def test_module_cli_error_exit(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spa_mxnet", "prune", str(tmp_path / "no-symbol.json"),
                           "-o", str(tmp_path / "o"), "--input-shape", "1,3,8,8"],
                          capture_output=True, text=True, cwd=REPO_DIR)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: MXNet symbol file not found: {tmp_path / 'no-symbol.json'}"]


@needs_engine
def test_gluon_prune_block(mx_env, tmp_path):
    """prune_block, called inside MXNet's environment, returns a working pruned SymbolBlock."""
    script = f"""
import json, mxnet as mx, numpy as np
from spa_mxnet import zoo
from spa_mxnet.gluon import prune_block
net = zoo.mobilenet(); net.initialize(); zoo.randomise(net)
pruned, summary = prune_block(net, {SHAPE}, ratio=0.5, out_prefix={str(tmp_path / 'g')!r})
x = mx.nd.array(np.random.default_rng(0).standard_normal({SHAPE}).astype(np.float32))
np.save({str(tmp_path / 'x.npy')!r}, x.asnumpy()); np.save({str(tmp_path / 'y.npy')!r}, pruned(x).asnumpy())
print(json.dumps(summary["removed_channels"]))
"""
    env = {"SPA_MAIN_PYTHON": sys.executable, "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(REPO_DIR / "adapters")}
    proc = subprocess.run([str(mx_env), "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip().splitlines()[-1]) > 0
    pruned_onnx = onnx.load(str(tmp_path / "g.onnx"))
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    assert np.max(np.abs(_ort(pruned_onnx, x) - y)) <= TOL


def test_fix_gamma_batchnorm_is_exported_as_mxnet_runs_it(exported):
    """Gluon BatchNorm(scale=False) ignores gamma in MXNet; the ONNX must use ones."""
    ex = exported["mobilenet"]
    gamma = next(t for t in ex.onnx.graph.initializer if t.name == "mobilenet_batchnorm0_gamma")
    np.testing.assert_array_equal(numpy_helper.to_array(gamma), np.ones(8, np.float32))
    assert ex.parameter_map["mobilenet_batchnorm0_gamma"].transform == "fix_gamma"


def test_corrupt_params_is_one_sentence(built, tmp_path):
    bad = tmp_path / "bad-0000.params"
    bad.write_bytes(b"not an ndarray file")
    with pytest.raises(InvalidModelError) as info:
        export_mxnet(MXNetModel(built["resnet"].symbol_path, str(bad), SHAPE))
    assert str(info.value).startswith(f"{bad} is not an MXNet parameter file")
    assert "\n" not in str(info.value)


@needs_engine
def test_spa_core_prune_returns_mxnet_model(built):
    res = spa_core.prune(built["mobilenet"], ratio=0.5)
    assert isinstance(res.model, MXNetModel)
    x = _x(5)
    assert np.max(np.abs(run_mxnet(res.model, {"data": x})[0] - _ort(res.onnx, x))) <= TOL
