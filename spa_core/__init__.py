"""SPA - Structurally Prune Anything.

Convert a model to ONNX, find coupled channel groups by mask propagation, score them
with a pluggable criterion, remove channels and bring the result back to the model's
framework.
"""

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
