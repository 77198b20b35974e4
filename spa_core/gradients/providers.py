"""Which gradient provider differentiates a model of each framework.

A provider factory is ``factory(model, exported, loss) -> Differentiable`` (see
:mod:`.driver`). Built-ins are imported only when used, so a user of one framework
never imports another. A third party adds one with :func:`register_provider`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import FrameworkError
from .driver import Differentiable

ProviderFactory = Callable[[Any, Any, Any], Differentiable]

_BUILTIN: dict[str, str] = {
    "torch": "spa_core.gradients.torch_provider",
    "keras": "spa_core.gradients.keras_provider",
    "jax": "spa_core.gradients.flax_provider",
    "flax": "spa_core.gradients.flax_provider",
    "onnx": "spa_core.gradients.onnx_provider",
}
_REGISTERED: dict[str, ProviderFactory] = {}


def register_provider(framework: str, factory: ProviderFactory) -> None:
    """Use ``factory`` to differentiate models of ``framework`` (replaces a built-in)."""
    _REGISTERED[framework] = factory


def has_provider(framework: str) -> bool:
    return framework in _REGISTERED or framework in _BUILTIN


def get_provider(framework: str) -> ProviderFactory:
    """The factory for ``framework``.

    :raises FrameworkError: when none is registered, or the framework is not installed.
    """
    if framework in _REGISTERED:
        return _REGISTERED[framework]
    module_name = _BUILTIN.get(framework)
    if module_name is None:
        raise FrameworkError(f"no gradient provider for '{framework}' models; pass the ONNX model instead")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FrameworkError(f"computing gradients of '{framework}' models needs {exc.name}, which is not installed") from exc
    return module.provider
