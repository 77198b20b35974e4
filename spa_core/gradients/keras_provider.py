"""Gradient provider for Keras models: ``tf.GradientTape`` (nested for ``H v``).

Parameters are named by Keras variable path (``conv1/kernel``), as the Keras adapter's
``parameter_map`` names them. The model runs with ``training=False`` (dropout off,
BatchNorm on its moving statistics) or, when batch statistics are asked for, with
``training=True`` and its moving statistics restored, so scoring changes nothing in the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..errors import InvalidOptionError
from ..types import ExportedModel
from .calibration import Batch, to_numpy


def _first(outputs: Any) -> Any:
    if isinstance(outputs, dict):
        return next(iter(outputs.values()))
    return outputs[0] if isinstance(outputs, tuple | list) else outputs


def _cross_entropy(outputs: Any, targets: Any) -> tf.Tensor:
    logits = _first(outputs)
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))


def _mse(outputs: Any, targets: Any) -> tf.Tensor:
    out = _first(outputs)
    return tf.reduce_mean(tf.square(out - tf.reshape(tf.cast(targets, out.dtype), tf.shape(out))))


def _pseudo_label(outputs: Any, targets: Any) -> tf.Tensor:
    logits = _first(outputs)
    labels = tf.argmax(tf.stop_gradient(logits), axis=-1)
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


LOSSES: dict[str, Callable[[Any, Any], tf.Tensor]] = {
    "cross_entropy": _cross_entropy,
    "mse": _mse,
    "pseudo_label": _pseudo_label,
}


class KerasFunction:
    """A loss over a Keras model, differentiated w.r.t. its variables (by path)."""

    def __init__(self, model: keras.Model, loss: str | Callable[..., Any], names: set[str] | None = None) -> None:
        if not callable(loss) and loss not in LOSSES:
            raise InvalidOptionError(f"unknown loss '{loss}'; use one of {', '.join(LOSSES)} or pass a callable")
        self.model = model
        self.batch_statistics = False
        self.loss_fn = loss if callable(loss) else LOSSES[loss]
        self.variables = {
            str(v.path): v for v in model.trainable_weights if names is None or str(v.path) in names
        }

    def use_batch_statistics(self) -> None:
        """Run the model in training mode (BatchNorm on batch statistics; dropout on too:
        Keras has no switch for one without the other); its moving statistics are
        restored after every call."""
        self.batch_statistics = True

    @contextlib.contextmanager
    def _kept_state(self) -> Iterator[None]:
        saved = [(v, v.numpy()) for v in self.model.non_trainable_variables] if self.batch_statistics else []
        try:
            yield
        finally:
            for v, value in saved:
                v.assign(value)

    def parameter_values(self) -> dict[str, np.ndarray]:
        return {n: np.asarray(v.numpy()) for n, v in self.variables.items()}

    def _loss(self, batch: Batch) -> tf.Tensor:
        inputs = [tf.convert_to_tensor(to_numpy(x)) for x in batch.inputs]
        with self._kept_state():
            outputs = self.model(inputs[0] if len(inputs) == 1 else inputs, training=self.batch_statistics)
        targets = None if batch.targets is None else tf.convert_to_tensor(to_numpy(batch.targets))
        return self.loss_fn(outputs, targets)

    def gradient(self, batch: Batch) -> dict[str, np.ndarray]:
        names = list(self.variables)
        with tf.GradientTape() as tape:
            loss = self._loss(batch)
        grads = tape.gradient(loss, [self.variables[n] for n in names])
        return self._numpy(names, grads)

    def hvp(self, batch: Batch, vector: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(self.variables)
        variables = [self.variables[n] for n in names]
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = self._loss(batch)
            grads = inner.gradient(loss, variables)
            terms = [tf.reduce_sum(g * tf.constant(vector[n], dtype=g.dtype))
                     for n, g in zip(names, grads) if g is not None and n in vector]
            dot = tf.add_n(terms) if terms else tf.constant(0.0)
        return self._numpy(names, outer.gradient(dot, variables))

    def _numpy(self, names: list[str], grads: list[Any]) -> dict[str, np.ndarray]:
        return {
            n: np.zeros(tuple(self.variables[n].shape), np.float32) if g is None else np.asarray(tf.convert_to_tensor(g))
            for n, g in zip(names, grads)
        }


def provider(model: Any, exported: ExportedModel | None, loss: str | Callable[..., Any]) -> KerasFunction:
    """The registry entry for ``keras``."""
    names = {b.native_name for b in exported.parameter_map.values()} if exported is not None else None
    return KerasFunction(model, loss, names)
