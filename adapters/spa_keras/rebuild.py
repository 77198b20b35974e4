"""Rebuild a Functional or Sequential Keras model with new layer widths and weights.

Every layer is re-created from its config (the pruned ones from their new config) and
called on the new tensors, so shapes flow through the model again; ``Reshape`` layers,
whose target shape spells out the channel count, get their target shape adapted to the
new input size. Weights are then set layer by layer: sliced for pruned layers, copied
for the others. The original model is not touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from spa_core.errors import FrameworkError

from .layers import LayerPlan
from .walk import is_graph_model, iter_layers


def rebuild(model: Any, plans: Mapping[str, LayerPlan]) -> Any:
    """A new model like ``model`` with every layer in ``plans`` replaced by its plan."""
    new_model = _Rebuilder(model, plans).model(model)
    _set_weights(model, new_model, plans)
    _copy_compile(model, new_model)
    return new_model


class _Rebuilder:
    """Clones layers with their planned configs; nested models are rebuilt on their new inputs."""

    def __init__(self, model: Any, plans: Mapping[str, LayerPlan]):
        self._keys = {id(layer): key for key, layer in iter_layers(model)}
        self._plans = plans
        self._originals: dict[int, Any] = {}

    def model(self, model: Any, inputs: Any = None) -> Any:
        """Rebuild a Functional or Sequential model, on ``inputs`` (new KerasTensors) if given."""
        import keras

        if isinstance(model, keras.Sequential):
            return self._sequential(model, inputs)
        if inputs is not None:
            flat = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype) for t in keras.tree.flatten(inputs)]
            inputs = flat if isinstance(model.input, list | tuple) else flat[0]
        # clone_model re-compiles a compiled model from its config, which raises for a lambda
        # loss (e.g. after spa_core.workflows.finetune); rebuild() copies the compile tolerantly.
        compiled = getattr(model, "compiled", False)
        model.compiled = False
        try:
            return keras.models.clone_model(model, input_tensors=inputs, clone_function=self.clone,
                                            call_function=self.call)
        finally:
            model.compiled = compiled

    def clone(self, layer: Any) -> Any:
        if is_graph_model(layer):
            return layer  # rebuilt in call(), once its new input shapes are known
        plan = self._plans.get(self._keys.get(id(layer), ""))
        new = layer.__class__.from_config(plan.config if plan is not None else layer.get_config())
        self._originals[id(new)] = layer
        return new

    def call(self, layer: Any, *args: Any, **kwargs: Any) -> Any:
        import keras

        if is_graph_model(layer):
            inputs = args[0] if args else kwargs.pop("inputs")
            return self.model(layer, inputs)(inputs, *args[1:], **kwargs)
        if isinstance(layer, keras.layers.Reshape):
            layer = _adapted_reshape(layer, self._originals.get(id(layer)), args[0] if args else kwargs.get("inputs"))
        return layer(*args, **kwargs)

    def _sequential(self, model: Any, inputs: Any) -> Any:
        import keras

        if not model.inputs:
            raise FrameworkError(f"the Sequential model {model.name!r} is not built; start it with keras.Input(shape)")
        spec = keras.tree.flatten(inputs)[0] if inputs is not None else model.inputs[0]
        new = keras.Sequential(name=model.name)
        new.add(keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype))
        for layer in model.layers:
            if is_graph_model(layer):
                new_layer = self.model(layer, new.outputs[0])
            else:
                new_layer = self.clone(layer)
                if isinstance(new_layer, keras.layers.Reshape):
                    new_layer = _adapted_reshape(new_layer, layer, new.outputs[0])
            new.add(new_layer)
        return new


def adapt_target_shape(target: Sequence[int], old_in: Sequence[int], new_in: Sequence[int]) -> tuple[int, ...]:
    """The Reshape target for a new input shape (batch excluded): the last axis scales."""
    target = tuple(int(t) for t in target)
    old_size, new_size = math.prod(old_in), math.prod(new_in)
    if old_size == new_size or -1 in target:
        return target
    last = target[-1] * new_size
    if last % old_size:
        raise FrameworkError(
            f"cannot adapt Reshape target {target} from input {tuple(old_in)} to {tuple(new_in)}"
        )
    return (*target[:-1], last // old_size)


def _adapted_reshape(layer: Any, original: Any, tensor: Any) -> Any:
    if original is None or tensor is None:
        return layer
    old_in = tuple(original.input.shape[1:])
    new_in = tuple(tensor.shape[1:])
    if old_in == new_in or None in old_in or None in new_in:
        return layer
    config = layer.get_config()
    config["target_shape"] = adapt_target_shape(config["target_shape"], old_in, new_in)
    return layer.__class__.from_config(config)


def _set_weights(model: Any, new_model: Any, plans: Mapping[str, LayerPlan]) -> None:
    new_layers = dict(iter_layers(new_model))
    for key, layer in iter_layers(model):
        if not layer.weights:
            continue
        target = new_layers.get(key)
        if target is None:
            raise FrameworkError(f"layer {key!r} is missing from the rebuilt model")
        values = plans[key].weights if key in plans else layer.get_weights()
        try:
            target.set_weights(values)
        except ValueError as exc:
            raise FrameworkError(
                f"layer {key!r} ({type(layer).__name__}) does not accept its pruned weights: "
                f"{str(exc).splitlines()[0]}"
            ) from None


def _copy_compile(model: Any, new_model: Any) -> None:
    """Compile the new model like the old one (fresh optimizer state: shapes changed)."""
    if not getattr(model, "compiled", False):
        return
    try:
        config = model.get_compile_config()
        if config:
            new_model.compile_from_config(config)
    except Exception:  # compile config of custom objects may not round-trip; leave uncompiled
        return


__all__ = ["adapt_target_shape", "rebuild"]
