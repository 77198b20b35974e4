"""What the JAX/Flax hooks do, with jax and flax imported (see :mod:`spa_jax.plugin`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import onnx
from flax import nnx, serialization

from spa_core.errors import FrameworkError
from spa_core.io import atomic_write
from spa_core.plan import Plan
from spa_core.types import ExportedModel

from .linen_model import LinenModel
from .linen_rebuild import rebuild_linen
from .nnx_rebuild import RebuildContext, check_forward, rebuild_nnx
from .slicing import native_kept
from .views import is_flax_model, make_view


def conv_groups(pruned_onnx: onnx.ModelProto | None, exported: ExportedModel) -> dict[str, int]:
    """The ``group`` of each pruned Conv, keyed by the path of the kernel it reads."""
    if pruned_onnx is None:
        return {}
    leaf_maps = exported.extras["leaf_maps"]
    groups: dict[str, int] = {}
    for node in pruned_onnx.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] in leaf_maps:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            groups[leaf_maps[node.input[1]].path] = int(group)
    return groups


def apply_plan(model: Any, plan: Plan, exported: ExportedModel, pruned_onnx: Any,
               options: dict[str, Any]) -> Any:
    """Return the pruned native model (see the module docstring)."""
    kept = native_kept(plan, exported)
    specs = exported.extras["input_specs"]
    view = make_view(model)
    if view.kind == "nnx":
        ctx = RebuildContext(kept=kept, conv_groups=conv_groups(pruned_onnx, exported))
        pruned = rebuild_nnx(model, ctx, inplace=bool(options.get("inplace", False)))
        check_forward(pruned, specs)
        return pruned
    linen_model = model if isinstance(model, LinenModel) else LinenModel(*model)
    return rebuild_linen(linen_model, kept, specs)


def state_dict(model: Any) -> dict[str, Any]:
    """The model's arrays as a nested dict of numpy arrays (msgpack-serialisable)."""
    if isinstance(model, nnx.Module):
        return jax.device_get(nnx.to_pure_dict(nnx.state(model)))
    if isinstance(model, LinenModel):
        return jax.device_get(serialization.to_state_dict(model.variables))
    if isinstance(model, tuple) and is_flax_model(model):
        return jax.device_get(serialization.to_state_dict(model[1]))
    raise FrameworkError(f"{type(model).__name__} is not a Flax model SPA can save")


def save_model(model: Any, path: str) -> None:
    """Write the model's variables to ``path`` (.msgpack), atomically."""
    if Path(path).suffix != ".msgpack":
        raise FrameworkError(f"SPA saves Flax models as .msgpack variable files, not {Path(path).name}")
    data = serialization.msgpack_serialize(state_dict(model))
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
