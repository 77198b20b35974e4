"""What pruning means for each Keras layer class: axis roles and the new config.

A :class:`LayerRule` names the role of every axis of every weight of a layer
(``"out"`` for a Conv2D kernel's last axis and its bias, ``"in"`` for the kernel's
input-channel axis...). Kept indices found for one weight axis apply to every axis with
the same role, so a BatchNormalization whose scale was pruned has its beta, mean and
variance sliced alike. A composite role ``"in*mult"`` is the C-order flattening of two
roles (a depthwise bias over channels x multiplier). The rule then writes the new
widths into the layer config (``filters``, ``units``, ``num_heads``...).

Rules are found by class, along the MRO, in :func:`layer_rules`; a layer class with no
rule whose weights the plan prunes is an error naming the class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spa_core.errors import FrameworkError

Roles = dict[str, tuple[str | None, ...]]
Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class LayerRule:
    """Roles of a layer's weight axes, and how new role sizes change its config."""

    roles: Callable[[Any, Shapes], Roles]
    config: Callable[[dict[str, Any], Mapping[str, int], Mapping[str, int]], dict[str, Any]]
    compensate: Callable[[dict[str, np.ndarray], Mapping[str, int], Mapping[str, int]], None] | None = None


@dataclass
class LayerPlan:
    """The pruned version of one layer: its new config and sliced weights (all of them)."""

    key: str
    config: dict[str, Any]
    weights: list[np.ndarray]
    sizes: dict[str, int]


# ---------------------------------------------------------------- role helpers
def _last_two(a: str, b: str) -> Callable[[tuple[int, ...]], tuple[str | None, ...]]:
    return lambda shape: (None,) * (len(shape) - 2) + (a, b)


def _per_weight(table: Mapping[str, Callable[[tuple[int, ...]], tuple[str | None, ...]]]) -> Callable[[Any, Shapes], Roles]:
    def roles(layer: Any, shapes: Shapes) -> Roles:
        return {rel: table[rel](shape) for rel, shape in shapes.items() if rel in table}

    return roles


def _vector(role: str) -> Callable[[tuple[int, ...]], tuple[str | None, ...]]:
    return lambda shape: (None,) * (len(shape) - 1) + (role,)


def _set(**keys: str) -> Callable[[dict[str, Any], Mapping[str, int], Mapping[str, int]], dict[str, Any]]:
    """Config update: ``config[key] = new size of role`` for each pruned role."""

    def update(config: dict[str, Any], sizes: Mapping[str, int], full: Mapping[str, int]) -> dict[str, Any]:
        for key, role in keys.items():
            if role in sizes:
                config[key] = sizes[role]
        return config

    return update


def _mha_config(config: dict[str, Any], sizes: Mapping[str, int], full: Mapping[str, int]) -> dict[str, Any]:
    config = _set(num_heads="heads", key_dim="key", value_dim="value")(config, sizes, full)
    if "out" in sizes or "qin" in sizes:
        config["output_shape"] = sizes.get("out", full.get("out"))
    return config


def _mha_compensate(weights: dict[str, np.ndarray], sizes: Mapping[str, int], full: Mapping[str, int]) -> None:
    """Keep the softmax temperature: Keras scales queries by 1/sqrt(key_dim), which pruning changes."""
    if "key" not in sizes:
        return
    factor = np.sqrt(sizes["key"] / full["key"])
    for rel in ("query/kernel", "query/bias"):
        if rel in weights:
            weights[rel] = (weights[rel] * factor).astype(weights[rel].dtype)


def _channelwise(layer: Any, shapes: Shapes) -> Roles:
    return {rel: _vector("c")(shape) for rel, shape in shapes.items()}


def layer_rules() -> dict[type, LayerRule]:
    """Keras layer class -> rule. Subclasses inherit their base class's rule."""
    import keras
    from keras.src.applications.convnext import LayerScale

    L = keras.layers
    conv = LayerRule(_per_weight({"kernel": _last_two("in", "out"), "bias": _vector("out")}), _set(filters="out"))
    transpose = LayerRule(_per_weight({"kernel": _last_two("out", "in"), "bias": _vector("out")}), _set(filters="out"))
    depthwise = LayerRule(
        _per_weight({"kernel": _last_two("in", "mult"), "bias": _vector("in*mult")}),
        _set(depth_multiplier="mult"),
    )
    separable = LayerRule(
        _per_weight(
            {
                "depthwise_kernel": _last_two("in", "mult"),
                "pointwise_kernel": _last_two("in*mult", "out"),
                "bias": _vector("out"),
            }
        ),
        _set(filters="out", depth_multiplier="mult"),
    )
    mha = LayerRule(
        _per_weight(
            {
                "query/kernel": lambda s: ("qin", "heads", "key"),
                "query/bias": lambda s: ("heads", "key"),
                "key/kernel": lambda s: ("kin", "heads", "key"),
                "key/bias": lambda s: ("heads", "key"),
                "value/kernel": lambda s: ("vin", "heads", "value"),
                "value/bias": lambda s: ("heads", "value"),
                "attention_output/kernel": lambda s: ("heads", "value", "out"),
                "attention_output/bias": lambda s: ("out",),
            }
        ),
        _mha_config,
        _mha_compensate,
    )
    channelwise = LayerRule(_channelwise, _set())
    return {
        L.Conv1D: conv,
        L.Conv2D: conv,
        L.Conv3D: conv,
        L.Conv1DTranspose: transpose,
        L.Conv2DTranspose: transpose,
        L.Conv3DTranspose: transpose,
        L.DepthwiseConv1D: depthwise,
        L.DepthwiseConv2D: depthwise,
        L.SeparableConv1D: separable,
        L.SeparableConv2D: separable,
        L.Dense: LayerRule(_per_weight({"kernel": _last_two("in", "out"), "bias": _vector("out")}), _set(units="out")),
        L.Embedding: LayerRule(_per_weight({"embeddings": _last_two("vocab", "out")}), _set(output_dim="out")),
        L.MultiHeadAttention: mha,
        L.BatchNormalization: channelwise,
        L.LayerNormalization: channelwise,
        L.PReLU: channelwise,
        L.Normalization: channelwise,
        LayerScale: LayerRule(_channelwise, _set(projection_dim="c")),
    }


def find_rule(layer: Any, rules: Mapping[type, LayerRule]) -> LayerRule | None:
    for cls in type(layer).__mro__:
        if cls in rules:
            return rules[cls]
    return None


# ---------------------------------------------------------------- planning one layer
def plan_layer(
    key: str,
    layer: Any,
    rel_paths: Sequence[str | None],
    kept_by_index: Mapping[int, Mapping[int, Sequence[int]]],
    rules: Mapping[type, LayerRule],
) -> LayerPlan:
    """The new config and sliced weights of ``layer`` given kept indices of some weights.

    ``rel_paths[i]`` is the relative path of ``layer.weights[i]`` (``None`` for weights
    SPA does not track, such as integer counters).
    """
    rule = find_rule(layer, rules)
    if rule is None:
        raise FrameworkError(
            f"layer {key!r} ({type(layer).__name__}) has pruned weights but SPA has no rule to "
            "rebuild this layer class; exclude it from pruning or add a rule to spa_keras.layers"
        )
    values = [np.asarray(w.numpy()) for w in layer.weights]
    shapes = {rel: values[i].shape for i, rel in enumerate(rel_paths) if rel is not None}
    roles = rule.roles(layer, shapes)
    full = _role_sizes(roles, shapes)
    observed: dict[str, list[int]] = {}
    for index, axes in kept_by_index.items():
        rel = rel_paths[index]
        if rel not in roles:
            raise FrameworkError(f"layer {key!r}: SPA does not know how to prune its weight {rel!r}")
        for axis, kept in axes.items():
            role = roles[rel][axis]
            if role is None:
                raise FrameworkError(f"layer {key!r}: axis {axis} of weight {rel!r} cannot be pruned")
            _observe(observed, role, list(kept), key)
    kept_roles = _resolve_composites(observed, full, key)
    sizes = {role: len(k) for role, k in kept_roles.items() if "*" not in role}
    sliced: dict[str, np.ndarray] = {}
    for i, value in enumerate(values):
        rel = rel_paths[i]
        for axis, role in enumerate(roles.get(rel, ()) if rel is not None else ()):
            if role in kept_roles:
                value = np.take(value, kept_roles[role], axis=axis)
        sliced[rel if rel is not None else f"#{i}"] = value
    if rule.compensate is not None:
        rule.compensate(sliced, sizes, full)
    weights = list(sliced.values())
    config = rule.config(dict(layer.get_config()), sizes, full)
    return LayerPlan(key, config, weights, sizes)


def _role_sizes(roles: Roles, shapes: Shapes) -> dict[str, int]:
    full: dict[str, int] = {}
    for rel, axes in roles.items():
        for axis, role in enumerate(axes):
            if role is not None:
                full[role] = int(shapes[rel][axis])
    return full


def _observe(observed: dict[str, list[int]], role: str, kept: list[int], key: str) -> None:
    if role in observed and observed[role] != kept:
        raise FrameworkError(
            f"layer {key!r}: the plan keeps different {role!r} channels in different weights; "
            "the plan does not fit this model"
        )
    observed[role] = kept


def _resolve_composites(observed: dict[str, list[int]], full: Mapping[str, int], key: str) -> dict[str, list[int]]:
    """Fill in composite roles from their parts, or parts from their composite."""
    kept = dict(observed)
    composites = {r for r in full if "*" in r}
    for comp in composites:
        a, b = comp.split("*")
        na, nb = full.get(a), full.get(b)
        if na is None or nb is None:
            continue
        if a in kept or b in kept:
            ka = np.asarray(kept.get(a, range(na)))
            kb = np.asarray(kept.get(b, range(nb)))
            flat = (ka[:, None] * nb + kb[None, :]).ravel().tolist()
            if comp in kept and kept[comp] != flat:
                raise FrameworkError(f"layer {key!r}: kept {comp!r} channels do not match kept {a!r} and {b!r}")
            kept[comp] = flat
        elif comp in kept:
            flat = np.asarray(kept[comp])
            ka, kb = np.unique(flat // nb), np.unique(flat % nb)
            if len(ka) * len(kb) != len(flat):
                raise FrameworkError(
                    f"layer {key!r}: the kept channels keep a different multiplier per input channel, "
                    "which Keras cannot express"
                )
            if len(ka) != na:
                kept[a] = ka.tolist()
            if len(kb) != nb:
                kept[b] = kb.tolist()
    return kept
