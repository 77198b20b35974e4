"""Gradient provider for Flax models (NNX modules and linen ``(module, variables)``): ``jax.grad``.

Parameters are named by ``/``-joined pytree path, as the JAX adapter's ``parameter_map``
names them; the model is read through the adapter's view (:mod:`spa_jax.views`) in
inference mode (or with BatchNorms on batch statistics:
:meth:`FlaxFunction.use_batch_statistics`), with the differentiated leaves substituted,
so the model is never changed. ``H v`` is forward-over-reverse:
``jax.jvp(jax.grad(loss), (θ,), (v,))``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import InvalidOptionError
from ..types import ExportedModel
from .calibration import Batch, to_numpy


def _first(outputs: Any) -> Any:
    if isinstance(outputs, dict):
        return next(iter(outputs.values()))
    return outputs[0] if isinstance(outputs, tuple | list) else outputs


def _cross_entropy(outputs: Any, targets: Any) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(_first(outputs), jnp.asarray(targets)).mean()


def _mse(outputs: Any, targets: Any) -> jax.Array:
    out = _first(outputs)
    return jnp.mean((out - jnp.asarray(targets, out.dtype).reshape(out.shape)) ** 2)


def _pseudo_label(outputs: Any, targets: Any) -> jax.Array:
    logits = _first(outputs)
    labels = jnp.argmax(jax.lax.stop_gradient(logits), axis=-1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


LOSSES: dict[str, Callable[[Any, Any], jax.Array]] = {
    "cross_entropy": _cross_entropy,
    "mse": _mse,
    "pseudo_label": _pseudo_label,
}


class FlaxFunction:
    """A loss over a Flax model, differentiated w.r.t. its float leaves (by path)."""

    def __init__(self, model: Any, loss: str | Callable[..., Any], names: set[str] | None = None) -> None:
        from spa_jax.views import make_view

        if not callable(loss) and loss not in LOSSES:
            raise InvalidOptionError(f"unknown loss '{loss}'; use one of {', '.join(LOSSES)} or pass a callable")
        self.loss_fn = loss if callable(loss) else LOSSES[loss]
        self.view = make_view(model)
        self.batch_statistics = False
        self.values = {
            p: v for p, v in self.view.leaves().items()
            if np.issubdtype(v.dtype, np.floating) and (names is None or p in names)
        }

    def use_batch_statistics(self) -> None:
        """Normalise every BatchNorm by the batch's own statistics (pruning at initialisation)."""
        self.batch_statistics = True

    def parameter_values(self) -> dict[str, np.ndarray]:
        return dict(self.values)

    def _objective(self, batch: Batch) -> Callable[[dict[str, jax.Array]], jax.Array]:
        inputs = [jnp.asarray(to_numpy(x)) for x in batch.inputs]
        targets = None if batch.targets is None else jnp.asarray(to_numpy(batch.targets))

        def objective(values: dict[str, jax.Array]) -> jax.Array:
            view = self.view.batch_statistics_callable if self.batch_statistics else self.view.export_callable
            return self.loss_fn(view(values)(*inputs), targets)

        return objective

    def _params(self) -> dict[str, jax.Array]:
        return {p: jnp.asarray(v) for p, v in self.values.items()}

    def gradient(self, batch: Batch) -> dict[str, np.ndarray]:
        grads = jax.grad(self._objective(batch))(self._params())
        return {p: np.asarray(g) for p, g in grads.items()}

    def hvp(self, batch: Batch, vector: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        params = self._params()
        tangent = {p: jnp.asarray(vector[p], v.dtype) if p in vector else jnp.zeros_like(v) for p, v in params.items()}
        _, hv = jax.jvp(jax.grad(self._objective(batch)), (params,), (tangent,))
        return {p: np.asarray(h) for p, h in hv.items()}


def provider(model: Any, exported: ExportedModel | None, loss: str | Callable[..., Any]) -> FlaxFunction:
    """The registry entry for ``jax``/``flax``."""
    names = {b.native_name for b in exported.parameter_map.values()} if exported is not None else None
    return FlaxFunction(model, loss, names)
