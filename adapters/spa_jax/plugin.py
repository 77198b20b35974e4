"""SPA's JAX/Flax adapter: the pluggy hooks (registered as entry point ``jax``).

* ``spa_detect_framework``: an ``nnx.Module``, a :class:`spa_jax.LinenModel` or a
  ``(linen.Module, variables)`` tuple is ``"jax"``.
* ``spa_export``: jax2onnx export (opset >= 18) with initializers bound to pytree leaves
  by probe values (:mod:`spa_jax.export`).
* ``spa_apply_plan``: NNX -> a pruned clone with new layer widths; linen -> a
  :class:`LinenModel` with pruned variables and a re-created module where possible.
* ``spa_save_model``: the pruned variables (NNX state or linen variables) as a msgpack
  file. There is no ``spa_load_model``: a Flax model cannot be rebuilt from a file
  without the code that defines its module.
"""

from __future__ import annotations

import sys
from typing import Any

from spa_core import hookimpl
from spa_core.plan import Plan
from spa_core.types import ExportedModel

FRAMEWORK = "jax"
FRAMEWORK_NAMES = {FRAMEWORK, "flax"}

# jax and flax are imported only when a hook has a Flax model to work on: every ``spa``
# command loads every plugin, and importing jax cost each of them 2-3 s.


@hookimpl
def spa_detect_framework(model: Any) -> str | None:
    if "flax" not in sys.modules:  # no Flax model can exist before flax is imported
        return None
    from .views import is_flax_model

    return FRAMEWORK if is_flax_model(model) else None


@hookimpl
def spa_export(model: Any, example_inputs: Any, framework: str, options: dict[str, Any]) -> ExportedModel | None:
    if framework not in FRAMEWORK_NAMES:
        return None
    from .export import export_model
    from .views import make_view

    return export_model(make_view(model), example_inputs, dict(options or {}))


def apply_plan(model: Any, plan: Plan, exported: ExportedModel, pruned_onnx: Any,
               options: dict[str, Any]) -> Any:
    """Return the pruned native model (see the module docstring)."""
    from .native import apply_plan as apply_to_native

    return apply_to_native(model, plan, exported, pruned_onnx, options)


@hookimpl
def spa_apply_plan(model: Any, plan: Plan, exported: ExportedModel, pruned_onnx: Any,
                   options: dict[str, Any]) -> Any | None:
    if exported.framework not in FRAMEWORK_NAMES:
        return None
    return apply_plan(model, plan, exported, pruned_onnx, dict(options or {}))


@hookimpl
def spa_save_model(model: Any, path: str, framework: str, options: dict[str, Any]) -> bool | None:
    if framework not in FRAMEWORK_NAMES:
        return None
    from .native import save_model

    save_model(model, path)
    return True
