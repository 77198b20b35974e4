"""Walking a Keras model: its layers (nested models flattened) and their float weights.

A layer is identified by its *key*: its name, prefixed with the names of the models that
contain it (``backbone/conv1``). Its weights are identified by their path relative to
the layer (``kernel``, ``query/bias``), which is what layer handlers use to give each
weight axis a role.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from spa_core.errors import FrameworkError

from .terms import LayerWeights, WeightRef


def is_graph_model(model: Any) -> bool:
    """True for Functional and Sequential models, whose layer graph can be rebuilt."""
    from keras.src.models.functional import Functional
    from keras.src.models.sequential import Sequential

    return isinstance(model, Functional | Sequential)


def require_graph_model(model: Any) -> None:
    """Raise the user-facing error for subclassed models."""
    if not is_graph_model(model):
        raise FrameworkError(
            f"{type(model).__name__} is a subclassed Keras model, whose layers SPA cannot "
            "rebuild; build it with the functional API or keras.Sequential, or export it "
            "to ONNX and prune that with `spa prune model.onnx`."
        )


def iter_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(key, layer)`` for every layer; nested Functional/Sequential models are entered."""
    for layer in model.layers:
        key = f"{prefix}{layer.name}"
        if is_graph_model(layer):
            yield from iter_layers(layer, key + "/")
        else:
            yield key, layer


def relative_path(layer_key: str, layer: Any, variable: Any) -> str:
    """The weight's path inside its layer (``kernel``, ``query/kernel``)."""
    path = str(getattr(variable, "path", variable.name))
    for prefix in (layer_key + "/", layer.name + "/"):
        if path.startswith(prefix):
            return path[len(prefix) :]
        marker = "/" + prefix
        if marker in path:
            return path.split(marker, 1)[1]
    return str(variable.name)


def is_float(variable: Any) -> bool:
    return np.dtype(str(variable.dtype)).kind == "f"


def layer_weights(model: Any) -> list[LayerWeights]:
    """Every layer with float weights, with a :class:`WeightRef` per weight."""
    out: list[LayerWeights] = []
    seen: set[int] = set()
    for key, layer in iter_layers(model):
        lw = LayerWeights(key, layer)
        for index, var in enumerate(layer.weights):
            if id(var) in seen or not is_float(var):
                continue
            seen.add(id(var))
            rel = relative_path(key, layer, var)
            lw.refs[rel] = WeightRef(key, index, f"{key}/{rel}")
            lw.shapes[rel] = tuple(int(d) for d in var.shape)
        if lw.refs:
            out.append(lw)
    return out


def find_layer(model: Any, key: str) -> Any:
    """The layer with ``key`` (see :func:`iter_layers`)."""
    for k, layer in iter_layers(model):
        if k == key:
            return layer
    raise FrameworkError(f"layer {key!r} is not in this Keras model; was the plan made for another model?")


def read_weights(model: Any) -> dict[WeightRef, np.ndarray]:
    """Current values of every float weight, keyed by :class:`WeightRef`."""
    values: dict[WeightRef, np.ndarray] = {}
    for lw in layer_weights(model):
        for ref in lw.refs.values():
            values[ref] = np.asarray(lw.layer.weights[ref.index].numpy())
    return values
