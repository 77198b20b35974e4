"""MXNet export, plan application and end-to-end pruning (main environment).

Each step writes files, runs :mod:`spa_mxnet.mx_worker` in MXNet's environment through
:mod:`spa_mxnet.runner`, and reads files back; no MXNet object ever enters this process.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from spa_core.errors import FrameworkError, InvalidModelError, InvalidOptionError
from spa_core.plan import Plan
from spa_core.types import ExportedModel

from .bindings import bind_parameters
from .model import PARAMS_SUFFIX, SYMBOL_SUFFIX, InputShapes, MXNetModel, prefix_of
from .onnx_tidy import tidy
from .runner import run_worker

log = logging.getLogger(__name__)
FRAMEWORK = "mxnet"
# ONNX ops whose ``group`` attribute becomes MXNet's ``num_group``: op -> weight input index.
GROUPED_OPS: dict[str, int] = {"Conv": 1, "ConvTranspose": 1}


def parse_shapes(shapes: InputShapes | str | None) -> Any:
    """Accept ``"1,3,32,32"`` or ``"data=1,3,32,32;mask=1,32"`` besides dicts and sequences."""
    if not isinstance(shapes, str):
        return shapes
    try:
        if "=" not in shapes:
            return [int(d) for d in shapes.replace("x", ",").split(",") if d.strip()]
        parts = (p.split("=", 1) for p in shapes.split(";") if p.strip())
        return {k.strip(): [int(d) for d in v.split(",") if d.strip()] for k, v in parts}
    except ValueError:
        raise InvalidOptionError(f"input shape {shapes!r} is not like 1,3,224,224 or data=1,3,224,224") from None


def _check_files(model: MXNetModel) -> None:
    for path, what in ((model.symbol_path, "symbol"), (model.params_path, "parameter")):
        if not Path(path).is_file():
            raise InvalidModelError(f"MXNet {what} file not found: {path}")


def export_mxnet(model: MXNetModel, input_shapes: InputShapes | str | None = None) -> ExportedModel:
    """Export ``model`` to ONNX; bind initializers to MXNet parameters (by name, checked by value)."""
    _check_files(model)
    shapes = parse_shapes(input_shapes if input_shapes is not None else model.input_shapes)
    with tempfile.TemporaryDirectory(prefix="spa-mxnet-export-") as tmp:
        onnx_path, npz_path = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "params.npz")
        result = run_worker("export", {
            "symbol": str(model.symbol_path), "params": str(model.params_path),
            "input_shapes": shapes, "onnx": onnx_path, "npz": npz_path,
        })
        raw = onnx.load(onnx_path)
        with np.load(npz_path) as data:
            native = {k: data[k] for k in data.files}
    exported_shapes = {k: tuple(v) for k, v in result["input_shapes"].items()}
    model_onnx = tidy(raw, exported_shapes)
    parameter_map, problems = bind_parameters(model_onnx, native, result["fixups"])
    for problem in problems:
        log.warning("%s", problem)
    return ExportedModel(
        onnx=model_onnx,
        framework=FRAMEWORK,
        input_shapes=exported_shapes,
        parameter_map=parameter_map,
        extras={
            "symbol_path": str(model.symbol_path),
            "params_path": str(model.params_path),
            "native_shapes": {k: tuple(v["shape"]) for k, v in result["params"].items()},
            "opset": result["opset"],
        },
    )


def native_slices(plan: Plan, exported: ExportedModel) -> dict[str, dict[str, list[int]]]:
    """Translate ``plan.parameters`` (ONNX initializer axes) to MXNet parameter axes."""
    onnx_shapes = {t.name: list(t.dims) for t in exported.onnx.graph.initializer}
    slices: dict[str, dict[str, list[int]]] = {}
    for name, entry in plan.parameters.items():
        binding = exported.parameter_map.get(name)
        if binding is None:
            if entry.kept:
                log.warning("plan prunes ONNX initializer %s, which has no MXNet parameter", name)
            continue
        if name in onnx_shapes and list(entry.shape) != onnx_shapes[name]:
            raise InvalidModelError(
                f"the plan was made for another model: {name} has shape {onnx_shapes[name]}, "
                f"the plan says {list(entry.shape)}"
            )
        for axis, kept in entry.kept.items():
            native_axis = binding.axes[axis] if axis < len(binding.axes) else None
            if native_axis is None:
                raise FrameworkError(f"ONNX axis {axis} of {name} has no MXNet counterpart")
            target = slices.setdefault(binding.native_name, {})
            if target.get(str(native_axis), kept) != list(kept):
                raise InvalidModelError(f"the plan keeps different channels of {binding.native_name} twice")
            target[str(native_axis)] = [int(i) for i in kept]
    return slices


def group_counts(pruned_onnx: onnx.ModelProto | None, exported: ExportedModel) -> dict[str, int]:
    """MXNet weight name -> ``group`` of its (pruned) ONNX convolution."""
    if pruned_onnx is None:
        return {}
    counts: dict[str, int] = {}
    for node in pruned_onnx.graph.node:
        index = GROUPED_OPS.get(node.op_type)
        if index is None or len(node.input) <= index:
            continue
        binding = exported.parameter_map.get(node.input[index])
        if binding is not None:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            counts[binding.native_name] = int(group)
    return counts


def apply_plan_mxnet(
    model: MXNetModel,
    plan: Plan,
    exported: ExportedModel,
    pruned_onnx: onnx.ModelProto | None = None,
    out_prefix: str | Path | None = None,
) -> MXNetModel:
    """Write the pruned ``OUT-symbol.json``/``OUT-0000.params``; return them as a model.

    ``out_prefix`` defaults to a fresh temporary folder (save it with ``spa_save_model``).
    """
    _check_files(model)
    if out_prefix is None:
        out_prefix = os.path.join(tempfile.mkdtemp(prefix="spa-mxnet-"), "pruned")
    result = run_worker("apply", {
        "symbol": str(model.symbol_path), "params": str(model.params_path),
        "out_prefix": str(out_prefix), "input_shapes": {k: list(v) for k, v in exported.input_shapes.items()},
        "slices": native_slices(plan, exported), "groups": group_counts(pruned_onnx, exported),
    })
    log.info("MXNet symbol: %d attribute(s) rewritten", len(result["changes"]))
    return MXNetModel(result["symbol"], result["params"], dict(exported.input_shapes))


def run_mxnet(model: MXNetModel, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of the MXNet network on ``feeds`` (inference mode), computed in MXNet's environment."""
    with tempfile.TemporaryDirectory(prefix="spa-mxnet-run-") as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inputs, **{k: np.asarray(v) for k, v in feeds.items()})
        n = run_worker("run", {"symbol": str(model.symbol_path), "params": str(model.params_path),
                               "inputs": inputs, "outputs": outputs})["outputs"]
        with np.load(outputs) as data:
            return [data[f"out_{i}"] for i in range(n)]


def save_mxnet(model: MXNetModel, path: str | Path) -> tuple[str, str]:
    """Copy the model's files to ``PREFIX-symbol.json``/``PREFIX-0000.params`` atomically."""
    from spa_core.io import atomic_path

    prefix = prefix_of(path)
    targets = (prefix + SYMBOL_SUFFIX, prefix + PARAMS_SUFFIX)
    for source, dest in zip((model.symbol_path, model.params_path), targets):
        if os.path.abspath(source) != os.path.abspath(dest):
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)
    return targets


def cli_prune(
    symbol: str | Path,
    params: str | Path | None,
    out_prefix: str | Path,
    ratio: float = 0.5,
    criterion: str = "l1",
    input_shape: InputShapes | str | None = None,
    verify: bool = True,
    **engine_options: Any,
) -> dict[str, Any]:
    """Prune MXNet files: export, prune the ONNX with the engine, apply the plan, write.

    Writes ``OUT-symbol.json``, ``OUT-0000.params``, ``OUT.onnx`` (pruned ONNX) and
    ``OUT.plan.json``. With ``verify`` the pruned MXNet network and the pruned ONNX run
    on one random input and must agree (rtol 1e-3, atol 1e-4).

    :param params: defaults to ``PREFIX-0000.params`` beside the symbol.
    :param input_shape: ``(1, 3, 32, 32)``, ``"1,3,32,32"``, or by input name.
    :return: a summary dict (paths, parameter counts, engine report, check result).
    """
    import spa_core
    from spa_core.io import save_model

    symbol = str(symbol)
    params = str(params) if params else prefix_of(symbol) + PARAMS_SUFFIX
    prefix = prefix_of(out_prefix)
    model = MXNetModel(symbol, params, parse_shapes(input_shape))
    exported = export_mxnet(model)
    result = spa_core.prune_onnx(exported.onnx, ratio=ratio, criterion=criterion,
                                 input_shapes=exported.input_shapes, **engine_options)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".spa-mxnet-", dir=Path(prefix).parent) as tmp:
        staged = apply_plan_mxnet(model, result.plan, exported, result.onnx, os.path.join(tmp, "pruned"))
        diff = _verify(staged, result.onnx, exported.input_shapes) if verify else None
        files = save_mxnet(staged, prefix)
    save_model(result.onnx, prefix + ".onnx")
    result.plan.save(prefix + ".plan.json")
    return {
        "framework": FRAMEWORK,
        "symbol": files[0],
        "params": files[1],
        "onnx": prefix + ".onnx",
        "plan": prefix + ".plan.json",
        "ratio": ratio,
        "criterion": criterion,
        "removed_channels": result.plan.removed_channels,
        "params_before": _count(exported.onnx),
        "params_after": _count(result.onnx),
        "report": _plain(getattr(result, "report", None)),
        "verify_max_abs_diff": diff,
    }


def _verify(model: MXNetModel, pruned_onnx: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> float:
    """Max |MXNet - onnxruntime| on one random input; FrameworkError if they disagree."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal(tuple(v)).astype(np.float32) for k, v in shapes.items()}
    mx_out = run_mxnet(model, feeds)
    sess = ort.InferenceSession(pruned_onnx.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_out = sess.run(None, feeds)
    diff = 0.0
    for a, b in zip(mx_out, ort_out):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-3, atol=1e-4):
            raise FrameworkError(
                f"the pruned MXNet network disagrees with the pruned ONNX model "
                f"(shapes {a.shape} vs {b.shape}, max diff "
                f"{float(np.max(np.abs(a - b))) if a.shape == b.shape else float('nan'):.3g})"
            )
        diff = max(diff, float(np.max(np.abs(a - b))))
    return diff


def _count(model: onnx.ModelProto) -> int:
    return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT))


def _plain(report: Any) -> Any:
    """A JSON-friendly form of the engine's report (dataclass, object with to_dict, or dict)."""
    if report is None or isinstance(report, (dict, list, str, int, float)):
        return report
    if hasattr(report, "to_dict"):
        return report.to_dict()
    import dataclasses

    return dataclasses.asdict(report) if dataclasses.is_dataclass(report) else str(report)
