"""SPA's pluggy hooks for MXNet (main environment; entry point ``mxnet = "spa_mxnet.plugin"``).

A native MXNet model is a :class:`spa_mxnet.MXNetModel` (symbol + params files + input
shapes): MXNet objects cannot enter the main environment. Inside MXNet's environment,
Gluon users call :func:`spa_mxnet.gluon.prune_block` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spa_core.errors import InvalidModelError
from spa_core.plan import Plan
from spa_core.plugins import hookimpl
from spa_core.types import ExportedModel

from .model import PARAMS_SUFFIX, SYMBOL_SUFFIX, MXNetModel, prefix_of
from .pipeline import FRAMEWORK, apply_plan_mxnet, export_mxnet, parse_shapes, save_mxnet


def _shapes_of(example_inputs: Any) -> Any:
    """Input shapes from example arrays: one array, a sequence, or a dict by input name."""
    if example_inputs is None:
        return None
    if isinstance(example_inputs, Mapping):
        return {k: list(np.shape(v)) for k, v in example_inputs.items()}
    if isinstance(example_inputs, (list, tuple)):
        return [list(np.shape(v)) for v in example_inputs]
    return [list(np.shape(example_inputs))]


@hookimpl
def spa_detect_framework(model: Any) -> str | None:
    return FRAMEWORK if isinstance(model, MXNetModel) else None


@hookimpl
def spa_export(model: Any, example_inputs: Any, framework: str, options: dict[str, Any]) -> ExportedModel | None:
    if framework != FRAMEWORK or not isinstance(model, MXNetModel):
        return None
    shapes = options.get("input_shapes") or _shapes_of(example_inputs)
    return export_mxnet(model, shapes)


@hookimpl
def spa_apply_plan(
    model: Any, plan: Plan, exported: ExportedModel, pruned_onnx: Any, options: dict[str, Any]
) -> MXNetModel | None:
    if exported.framework != FRAMEWORK:
        return None
    return apply_plan_mxnet(model, plan, exported, pruned_onnx, options.get("out_prefix"))


@hookimpl
def spa_load_model(path: str, framework: str | None, options: dict[str, Any]) -> tuple[str, MXNetModel] | None:
    """``PREFIX-symbol.json`` (or any ``.json`` with ``framework="mxnet"``) + ``options["params"]``."""
    text = str(path)
    if framework not in (None, FRAMEWORK):
        return None
    if framework is None and not text.endswith(SYMBOL_SUFFIX):
        return None
    if not text.endswith(".json"):
        return None
    params = options.get("params") or prefix_of(text) + PARAMS_SUFFIX
    for file, what in ((text, "symbol"), (params, "parameter")):
        if not Path(file).is_file():
            raise InvalidModelError(f"MXNet {what} file not found: {file}")
    shapes = options.get("input_shapes") or options.get("input_shape")
    return FRAMEWORK, MXNetModel(text, str(params), parse_shapes(shapes))


@hookimpl
def spa_save_model(model: Any, path: str, framework: str, options: dict[str, Any]) -> bool | None:
    """Write ``PREFIX-symbol.json`` and ``PREFIX-0000.params`` (``path`` may name either or the prefix)."""
    if framework != FRAMEWORK or not isinstance(model, MXNetModel):
        return None
    save_mxnet(model, path)
    return True
