"""The PyTorch adapter plugin: ``nn.Module`` in, pruned ``nn.Module`` out.

Registered through the ``spa`` entry-point group like any third-party plugin.
``torch`` is imported only when a PyTorch model is actually handled.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from spa_core import hookimpl
from spa_core.errors import FrameworkError, InvalidModelError
from spa_core.types import ExportedModel

FRAMEWORK = "torch"
VALIDATION_RTOL = 1e-4


@hookimpl
def spa_detect_framework(model: Any) -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return FRAMEWORK
    return None


@hookimpl
def spa_export(model: Any, example_inputs: Any, framework: str, options: dict[str, Any]) -> ExportedModel | None:
    if framework != FRAMEWORK:
        return None
    from .export import export_module

    return export_module(model, example_inputs, options)


@hookimpl
def spa_apply_plan(model: Any, plan: Any, exported: ExportedModel, pruned_onnx: Any, options: dict[str, Any]) -> Any:
    if exported.framework != FRAMEWORK:
        return None
    from .apply import apply_plan_to_module
    from .hf.modules import register_updaters
    from .split_sizes import update_split_attributes
    from .validate import check_against_onnx

    register_updaters(model)  # transformers/timm attention: head counts follow the pruned weights
    pruned = apply_plan_to_module(model, plan, exported, inplace=bool(options.get("inplace")))
    update_split_attributes(pruned, exported.onnx, pruned_onnx)
    if options.get("validate", True) and exported.extras.get("example_inputs") is not None:
        check_against_onnx(pruned, pruned_onnx, exported.extras["example_inputs"], VALIDATION_RTOL, exported)
    return pruned


@hookimpl
def spa_load_model(path: str, framework: str | None, options: dict[str, Any]) -> Any:
    if framework not in (None, FRAMEWORK) or Path(path).suffix not in (".pt", ".pth", ".pt2"):
        return None
    from .files import load_module

    return FRAMEWORK, load_module(path, trust_pickle=bool(options.get("trust_pickle")))


@hookimpl
def spa_save_model(model: Any, path: str, framework: str, options: dict[str, Any]) -> bool | None:
    if framework != FRAMEWORK:
        return None
    from .files import save_module

    save_module(model, path)
    return True


__all__ = ["FrameworkError", "InvalidModelError"]
