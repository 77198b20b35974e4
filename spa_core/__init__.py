"""SPA - Structurally Prune Anything.

Convert a model to ONNX, find coupled channel groups by mask propagation, score them
with a pluggable criterion, remove channels and bring the result back to the model's
framework.

Public names are imported lazily (PEP 562), so ``spa --help`` and plugin discovery do
not pay for onnx, scipy or any framework until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "PruneResult": "api",
    "analyze_onnx": "api",
    "apply_plan": "api",
    "apply_plan_onnx": "api",
    "prune": "api",
    "prune_onnx": "api",
    "Plan": "plan",
    "hookimpl": "plugins",
    "ExportedModel": "types",
    "ParamBinding": "types",
    "SpaError": "errors",
    "InvalidModelError": "errors",
    "InvalidOptionError": "errors",
    "UnprunableModelError": "errors",
    "FrameworkError": "errors",
}
_SUBMODULES = {"testing", "runtime", "io", "analysis", "planner", "surgery", "oracle", "fuzzing", "datasets"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spa_core' has no attribute {name!r}")


if TYPE_CHECKING:
    from .api import PruneResult, analyze_onnx, apply_plan, apply_plan_onnx, prune, prune_onnx  # noqa: F401
    from .errors import (  # noqa: F401
        FrameworkError,
        InvalidModelError,
        InvalidOptionError,
        SpaError,
        UnprunableModelError,
    )
    from .plan import Plan  # noqa: F401
    from .plugins import hookimpl  # noqa: F401
    from .types import ExportedModel, ParamBinding  # noqa: F401
