"""The built-in fine-tuning loop for Flax models (optax Adam).

NNX modules are trained in place in train mode (BatchNorm statistics update) and put
back in eval mode. Linen models are trained on their ``params`` with the model's own
``apply_kwargs`` (its inference mode: BatchNorm statistics stay fixed) and returned as a
new :class:`spa_jax.LinenModel`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ..gradients.calibration import to_numpy
from ..gradients.flax_provider import LOSSES
from .finetune import TrainConfig, epochs_of, split_batch


def _arrays(batch: Any) -> tuple[list[jax.Array], jax.Array]:
    inputs, targets = split_batch(batch)
    return [jnp.asarray(to_numpy(x)) for x in inputs], jnp.asarray(to_numpy(targets))


def _optimizer(config: TrainConfig) -> optax.GradientTransformation:
    return optax.adamw(config.lr, weight_decay=config.weight_decay)


def train(model: Any, data: Iterable[Any], config: TrainConfig) -> Any:
    loss = config.loss if callable(config.loss) else LOSSES[config.loss]
    if isinstance(model, nnx.Module):
        return _train_nnx(model, data, config, loss)
    return _train_linen(model, data, config, loss)


def _train_nnx(model: nnx.Module, data: Iterable[Any], config: TrainConfig, loss: Any) -> nnx.Module:
    opt = nnx.Optimizer(model, _optimizer(config), wrt=nnx.Param)

    @nnx.jit
    def step(model: nnx.Module, opt: nnx.Optimizer, inputs: list[jax.Array], targets: jax.Array) -> None:
        grads = nnx.grad(lambda m: loss(m(*inputs), targets))(model)
        opt.update(model, grads)

    model.train()
    for batch in epochs_of(data, config):
        inputs, targets = _arrays(batch)
        step(model, opt, inputs, targets)
    model.eval()
    return model


def _train_linen(model: Any, data: Iterable[Any], config: TrainConfig, loss: Any) -> Any:
    from spa_jax import LinenModel

    linen_model = model if isinstance(model, LinenModel) else LinenModel(*model)
    variables = dict(linen_model.variables)
    module, kwargs = linen_model.module, dict(linen_model.apply_kwargs)
    tx = _optimizer(config)
    params = variables["params"]
    state = tx.init(params)

    @jax.jit
    def step(params: Any, state: Any, inputs: list[jax.Array], targets: jax.Array) -> tuple[Any, Any]:
        def objective(p: Any) -> jax.Array:
            return loss(module.apply({**variables, "params": p}, *inputs, **kwargs), targets)

        grads = jax.grad(objective)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for batch in epochs_of(data, config):
        inputs, targets = _arrays(batch)
        params, state = step(params, state, inputs, targets)
    return LinenModel(module, {**variables, "params": params}, kwargs, list(linen_model.notes))
