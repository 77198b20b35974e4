"""One interface over the two kinds of Flax model: NNX modules and linen (module, variables).

A *view* lists the model's array leaves by path (``block/conv1/kernel``,
``params/Conv_0/kernel``), gives the callable to export with those leaves replaced
(probe values, see :mod:`spa_jax.probe`) in inference mode, and builds the pruned model
from sliced leaves. The export and plan code only talks to views, so a new model kind
(Equinox, Haiku...) is one more view registered in :data:`VIEW_FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import numpy as np
from flax import linen, nnx

from spa_core.errors import FrameworkError

from .linen_model import LinenModel


class ModelView(Protocol):
    """What the exporter and the plan applier need from a Flax model."""

    kind: str

    def leaves(self) -> dict[str, np.ndarray]:
        """Every array leaf, by ``/``-joined path, in a stable order."""

    def export_callable(self, values: Mapping[str, np.ndarray] | None) -> Callable[..., Any]:
        """The function to trace, in inference mode, with ``values`` replacing leaves."""

    def batch_statistics_callable(self, values: Mapping[str, Any]) -> Callable[..., Any]:
        """As :meth:`export_callable`, but every BatchNorm normalises by the batch's own
        statistics (as in training; dropout stays off). The model is not changed."""


def path_string(path: tuple[Any, ...]) -> str:
    """Join an NNX path or a ``jax.tree_util`` key path with ``/``."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr) and not isinstance(key, str | int):
                key = getattr(key, attr)
                break
        parts.append(str(key))
    return "/".join(parts)


# ------------------------------------------------------------------------- NNX
class NnxView:
    """An ``nnx.Module``; leaves are the values of its array ``Variable``\\ s."""

    kind = "nnx"

    def __init__(self, module: nnx.Module) -> None:
        self.module = module

    @staticmethod
    def variables(module: nnx.Module) -> dict[str, nnx.Variable]:
        """The module's array variables by path (live references: setting them edits it)."""
        out: dict[str, nnx.Variable] = {}
        for path, var in nnx.to_flat_state(nnx.state(module)):
            value = var.get_value()
            if hasattr(value, "shape") and hasattr(value, "dtype"):
                out[path_string(path)] = var
        return out

    def leaves(self) -> dict[str, np.ndarray]:
        values = {p: _host(v.get_value()) for p, v in self.variables(self.module).items()}
        return {p: v for p, v in values.items() if v is not None}

    def export_callable(self, values: Mapping[str, np.ndarray] | None) -> Callable[..., Any]:
        copy = nnx.clone(self.module)
        copy.eval()
        if values is not None:
            for path, var in self.variables(copy).items():
                if path in values and _is_float(var.get_value()):
                    var.set_value(jax.numpy.asarray(values[path]))
        return copy

    def batch_statistics_callable(self, values: Mapping[str, Any]) -> Callable[..., Any]:
        copy = self.export_callable(values)
        copy.set_attributes(use_running_average=False, raise_if_not_found=False)
        return copy


# ------------------------------------------------------------------------- linen
class LinenView:
    """A linen module with its variables pytree; leaves are the pytree's arrays."""

    kind = "linen"

    def __init__(self, model: LinenModel) -> None:
        if model.module is None:
            raise FrameworkError("this LinenModel has no module (it was pruned without one); prune the original model")
        self.model = model
        flat, self.treedef = jax.tree_util.tree_flatten_with_path(model.variables)
        self.paths = [path_string(p) for p, _ in flat]
        self._values = [leaf for _, leaf in flat]

    def leaves(self) -> dict[str, np.ndarray]:
        values = {p: _host(v) for p, v in zip(self.paths, self._values) if hasattr(v, "shape")}
        return {p: v for p, v in values.items() if v is not None}

    def variables_with(self, values: Mapping[str, Any]) -> Any:
        """The variables pytree with the leaves named in ``values`` replaced."""
        leaves = [values.get(p, v) for p, v in zip(self.paths, self._values)]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def export_callable(self, values: Mapping[str, np.ndarray] | None) -> Callable[..., Any]:
        variables = self.model.variables if values is None else self.variables_with(
            {p: jax.numpy.asarray(v) for p, v in values.items() if v.dtype == np.float32}
        )
        module, kwargs = self.model.module, dict(self.model.apply_kwargs)

        def run(*inputs: Any) -> Any:
            return module.apply(variables, *inputs, **kwargs)

        return run

    def batch_statistics_callable(self, values: Mapping[str, Any]) -> Callable[..., Any]:
        """Linen modules decide ``use_running_average`` in their own code, so every
        ``BatchNorm`` call is intercepted and told to use the batch; the statistics it
        would write go to a throw-away ``batch_stats`` collection."""
        variables = self.variables_with(values)
        module, kwargs = self.model.module, dict(self.model.apply_kwargs)

        def run(*inputs: Any) -> Any:
            with linen.intercept_methods(_batch_statistics_interceptor):
                outputs, _ = module.apply(variables, *inputs, mutable=["batch_stats"], **kwargs)
            return outputs

        return run


def _batch_statistics_interceptor(next_fun: Callable[..., Any], args: Any, kwargs: Any, context: Any) -> Any:
    """Call a ``BatchNorm`` with ``use_running_average=False``, whether the module's code set it in
    the constructor (cleared on this bound instance for the call: linen refuses both) or the call."""
    module = context.module
    if not (isinstance(module, linen.BatchNorm) and context.method_name == "__call__"):
        return next_fun(*args, **kwargs)
    args, kwargs = args[:1], {**kwargs, "use_running_average": False}  # args[1] would be the flag
    saved = module.use_running_average
    object.__setattr__(module, "use_running_average", None)  # linen modules are frozen dataclasses
    try:
        return next_fun(*args, **kwargs)
    finally:
        object.__setattr__(module, "use_running_average", saved)


def _host(value: Any) -> np.ndarray | None:
    """``value`` as a numpy array, or ``None`` for typed RNG keys (never parameters)."""
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        return None
    return np.asarray(jax.device_get(value))


def _is_float(value: Any) -> bool:
    return jax.numpy.issubdtype(value.dtype, jax.numpy.floating)


def _linen_tuple(model: tuple) -> LinenModel:
    module, variables = model
    return LinenModel(module, variables)


def _is_linen_tuple(model: Any) -> bool:
    return (
        isinstance(model, tuple)
        and len(model) == 2
        and isinstance(model[0], linen.Module)
        and isinstance(model[1], Mapping)
    )


# model type -> (test, view factory); the first test that accepts the model wins
VIEW_FACTORIES: dict[str, tuple[Callable[[Any], bool], Callable[[Any], ModelView]]] = {
    "nnx": (lambda m: isinstance(m, nnx.Module), NnxView),
    "linen": (lambda m: isinstance(m, LinenModel), LinenView),
    "linen_tuple": (_is_linen_tuple, lambda m: LinenView(_linen_tuple(m))),
}


def is_flax_model(model: Any) -> bool:
    """True for an ``nnx.Module``, a :class:`LinenModel` or a ``(linen.Module, variables)`` tuple."""
    return any(test(model) for test, _ in VIEW_FACTORIES.values())


def make_view(model: Any) -> ModelView:
    """The view of ``model``.

    :raises FrameworkError: when ``model`` is a bare linen module (no variables) or not
        a Flax model at all.
    """
    for test, factory in VIEW_FACTORIES.values():
        if test(model):
            return factory(model)
    if isinstance(model, linen.Module):
        raise FrameworkError(
            "a linen module holds no weights; pass spa_jax.LinenModel(module, variables) "
            "or the tuple (module, variables)"
        )
    raise FrameworkError(f"{type(model).__name__} is not a Flax NNX module or linen model")
