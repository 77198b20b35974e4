"""SPA - Structurally Prune Anything.

Convert a model to ONNX, find coupled channel groups by mask propagation, score them
with a pluggable criterion, remove channels and bring the result back to the model's
framework.
"""

from .api import PruneResult, analyze_onnx, apply_plan, apply_plan_onnx, prune, prune_onnx
from .errors import (
    FrameworkError,
    InvalidModelError,
    InvalidOptionError,
    SpaError,
    UnprunableModelError,
)
from .plan import Plan
from .plugins import hookimpl
from .types import ExportedModel, ParamBinding

__all__ = [
    "PruneResult",
    "analyze_onnx",
    "apply_plan",
    "apply_plan_onnx",
    "prune",
    "prune_onnx",
    "ExportedModel",
    "FrameworkError",
    "InvalidModelError",
    "InvalidOptionError",
    "ParamBinding",
    "Plan",
    "SpaError",
    "UnprunableModelError",
    "hookimpl",
]
from . import testing  # noqa: E402,F401
