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
    import keras

    keys = {id(layer): key for key, layer in iter_layers(model)}
    originals: dict[int, Any] = {}

    def clone(layer: Any) -> Any:
        plan = plans.get(keys.get(id(layer), ""))
        config = plan.config if plan is not None else layer.get_config()
        new = layer.__class__.from_config(config)
        originals[id(new)] = layer
        return new

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(layer, keras.layers.Reshape):
            old = originals.get(id(layer))
            layer = _adapted_reshape(layer, old, args[0] if args else kwargs.get("inputs"))
        return layer(*args, **kwargs)

    if isinstance(model, keras.Sequential):
        new_model = _rebuild_sequential(model, clone)
    else:
        new_model = keras.models.clone_model(model, clone_function=clone, call_function=call, recursive=True)
    _set_weights(model, new_model, plans)
    _copy_compile(model, new_model)
    return new_model


def _rebuild_sequential(model: Any, clone: Any) -> Any:
    import keras

    if not model.inputs:
        raise FrameworkError("the Sequential model is not built; start it with keras.Input(shape)")
    new = keras.Sequential(name=model.name)
    spec = model.inputs[0]
    new.add(keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype))
    for layer in model.layers:
        new_layer = clone(layer)
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


__all__ = ["adapt_target_shape", "is_graph_model", "rebuild"]
