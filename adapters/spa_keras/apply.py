"""Apply a pruning plan (ONNX initializer -> kept indices) to the Keras model it was made for.

Each pruned initializer is traced back through its :class:`~spa_keras.mapping.InitializerSource`
to kept indices of Keras weights (a folded BatchNormalization included), the weights are
grouped by layer, each layer's rule turns them into a new config and sliced weights, and
the model is rebuilt.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from spa_core.errors import FrameworkError
from spa_core.plan import Plan
from spa_core.types import ExportedModel

from .layers import LayerPlan, layer_rules, plan_layer
from .mapping import InitializerSource, NativeKept
from .rebuild import rebuild
from .terms import WeightRef
from .walk import is_float, iter_layers, relative_path, require_graph_model

log = logging.getLogger(__name__)


def weight_kept(plan: Plan, sources: Mapping[str, InitializerSource]) -> NativeKept:
    """Kept indices per axis of every Keras weight the plan prunes."""
    result: NativeKept = {}
    for name, param in plan.parameters.items():
        if not param.kept:
            continue
        source = sources.get(name)
        if source is None:
            log.debug("plan entry %s has no Keras weight behind it; ignored", name)
            continue
        for ref, axes in source.native_kept(param.kept, name).items():
            mine = result.setdefault(ref, {})
            for axis, kept in axes.items():
                if axis in mine and mine[axis] != kept:
                    raise FrameworkError(
                        f"the plan keeps different channels of {ref.path} (axis {axis}) in different "
                        "initializers; it does not fit this model"
                    )
                mine[axis] = kept
    return result


def layer_plans(model: Any, kept: NativeKept) -> dict[str, LayerPlan]:
    """A :class:`LayerPlan` for every layer with a pruned weight."""
    by_layer: dict[str, dict[int, dict[int, list[int]]]] = defaultdict(dict)
    for ref, axes in kept.items():
        by_layer[ref.layer][ref.index] = axes
    rules = layer_rules()
    plans: dict[str, LayerPlan] = {}
    layers = dict(iter_layers(model))
    for key, by_index in by_layer.items():
        layer = layers.get(key)
        if layer is None:
            raise FrameworkError(f"layer {key!r} is not in this Keras model; was the plan made for another model?")
        rel = [relative_path(key, layer, w) if is_float(w) else None for w in layer.weights]
        plans[key] = plan_layer(key, layer, rel, by_index, rules)
    return plans


def apply_plan(model: Any, plan: Plan, exported: ExportedModel) -> Any:
    """The pruned Keras model (a new model; ``model`` is not modified)."""
    require_graph_model(model)
    sources = exported.extras.get("sources")
    if sources is None:
        raise FrameworkError("the exported model carries no Keras weight map; export it with the Keras adapter")
    plans = layer_plans(model, weight_kept(plan, sources))
    return rebuild(model, plans)


__all__ = ["WeightRef", "apply_plan", "layer_plans", "weight_kept"]
