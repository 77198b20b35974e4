"""The ONNX "adapter": a ModelProto or .onnx path prunes to a ModelProto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from .io import load_model, save_model
from .plugins import hookimpl
from .types import ExportedModel


@hookimpl
def spa_detect_framework(model: Any) -> str | None:
    if isinstance(model, onnx.ModelProto):
        return "onnx"
    if isinstance(model, str | Path) and str(model).endswith(".onnx"):
        return "onnx"
    return None


@hookimpl
def spa_export(model: Any, example_inputs: Any, framework: str, options: dict[str, Any]) -> ExportedModel | None:
    if framework != "onnx":
        return None
    m = load_model(model)
    return ExportedModel(onnx=m, framework="onnx", input_shapes=dict(options.get("input_shapes", {})))


@hookimpl
def spa_apply_plan(model: Any, plan: Any, exported: ExportedModel, pruned_onnx: Any, options: dict[str, Any]) -> Any:
    if exported.framework != "onnx":
        return None
    return pruned_onnx


@hookimpl
def spa_load_model(path: str, framework: str | None, options: dict[str, Any]) -> Any:
    if framework not in (None, "onnx") or not str(path).endswith(".onnx"):
        return None
    return "onnx", load_model(path)


@hookimpl
def spa_save_model(model: Any, path: str, framework: str, options: dict[str, Any]) -> bool | None:
    if framework != "onnx":
        return None
    save_model(model, path)
    return True
