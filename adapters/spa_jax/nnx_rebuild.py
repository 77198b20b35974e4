"""Build the pruned NNX module: slice its variables, then update each layer's widths.

The module is cloned (or edited in place with ``options["inplace"]``), every pruned
variable gets its sliced value, and then every sub-module whose type has a handler in
:data:`NNX_HANDLERS` re-reads its widths from its (new) parameter shapes: ``nnx.Conv``'s
``in_features``/``out_features``/``feature_group_count``, ``nnx.BatchNorm``'s
``num_features``, ``nnx.MultiHeadAttention``'s ``num_heads``/``head_dim``... A module type
without a handler just has its variables sliced, which is all a custom module that reads
its widths from its parameters needs. Handlers are looked up along the class's MRO, so a
subclass of ``nnx.Linear`` is handled as a Linear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from spa_core.errors import FrameworkError

from .slicing import NativeKept, slice_leaf
from .views import NnxView, path_string


@dataclass
class RebuildContext:
    """What a handler may need beyond its own parameters.

    Attributes:
        kept: native kept indices of every pruned leaf (by path).
        conv_groups: the ``group`` attribute of the pruned ONNX Conv reading each conv
            kernel (by the kernel's path), when known.
    """

    kept: NativeKept = field(default_factory=dict)
    conv_groups: dict[str, int] = field(default_factory=dict)


Handler = Callable[[nnx.Module, str, RebuildContext], None]


def _shape(module: nnx.Module, name: str) -> tuple[int, ...] | None:
    var = getattr(module, name, None)
    return tuple(var.shape) if isinstance(var, nnx.Variable) else None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _conv(module: nnx.Conv, path: str, ctx: RebuildContext) -> None:
    kernel = _shape(module, "kernel")
    old_groups, old_in, old_out = module.feature_group_count, module.in_features, module.out_features
    default = old_groups
    if old_groups > 1 and old_groups == old_in:  # depthwise: one group per input channel
        default = max(1, kernel[-1] * old_groups // old_out)
    groups = ctx.conv_groups.get(_join(path, "kernel"), default)
    module.feature_group_count = groups
    module.in_features = kernel[-2] * groups
    module.out_features = kernel[-1]
    module.kernel_shape = kernel
    kept = ctx.kept.get(_join(path, "kernel"))
    if getattr(module, "mask", None) is not None and kept:
        module.mask = jnp.asarray(slice_leaf(module.mask, kept))


def _conv_transpose(module: nnx.ConvTranspose, path: str, ctx: RebuildContext) -> None:
    kernel = _shape(module, "kernel")
    module.in_features, module.out_features = kernel[-2], kernel[-1]
    module.kernel_shape = kernel
    kept = ctx.kept.get(_join(path, "kernel"))
    if getattr(module, "mask", None) is not None and kept:
        module.mask = jnp.asarray(slice_leaf(module.mask, kept))


def _linear(module: nnx.Linear, path: str, ctx: RebuildContext) -> None:
    module.in_features, module.out_features = _shape(module, "kernel")


def _linear_general(module: nnx.LinearGeneral, path: str, ctx: RebuildContext) -> None:
    kernel = _shape(module, "kernel")
    n_batch, n_in = len(module.batch_axis), len(module.in_features)
    module.in_features = tuple(kernel[n_batch : n_batch + n_in])
    module.out_features = tuple(kernel[n_batch + n_in :])


def _norm(module: nnx.Module, path: str, ctx: RebuildContext) -> None:
    for name in ("scale", "bias", "mean", "var"):
        shape = _shape(module, name)
        if shape:
            module.num_features = shape[-1]
            break
    groups = getattr(module, "num_groups", None)
    if groups is not None and getattr(module, "group_size", None) is not None:
        module.num_groups = module.num_features // module.group_size
    elif groups is not None and module.num_features % groups:
        raise FrameworkError(
            f"GroupNorm {path} would have {module.num_features} channels, not a multiple of its {groups} groups"
        )


def _embed(module: nnx.Embed, path: str, ctx: RebuildContext) -> None:
    module.num_embeddings, module.features = _shape(module, "embedding")


def _attention(module: nnx.MultiHeadAttention, path: str, ctx: RebuildContext) -> None:
    q = _shape(module.query, "kernel")  # (in, heads, head_dim)
    k = _shape(module.key, "kernel")
    o = _shape(module.out, "kernel")  # (heads, head_dim, out)
    module.in_features, module.num_heads, module.head_dim = q
    module.qkv_features = q[1] * q[2]
    module.in_kv_features = k[0]
    module.out_features = o[-1]
    if getattr(module, "num_kv_heads", None) is not None:
        module.num_kv_heads = k[1]


# module type -> handler; looked up along the module class's MRO
NNX_HANDLERS: dict[type, Handler] = {
    nnx.Conv: _conv,
    nnx.ConvTranspose: _conv_transpose,
    nnx.Linear: _linear,
    nnx.LinearGeneral: _linear_general,
    nnx.BatchNorm: _norm,
    nnx.LayerNorm: _norm,
    nnx.RMSNorm: _norm,
    nnx.GroupNorm: _norm,
    nnx.Embed: _embed,
    nnx.MultiHeadAttention: _attention,
}


def handler_for(module: nnx.Module) -> Handler | None:
    for cls in type(module).__mro__:
        if cls in NNX_HANDLERS:
            return NNX_HANDLERS[cls]
    return None


def rebuild_nnx(module: nnx.Module, ctx: RebuildContext, inplace: bool = False) -> nnx.Module:
    """Return ``module`` (a clone unless ``inplace``) with pruned variables and widths."""
    target = module if inplace else nnx.clone(module)
    variables = NnxView.variables(target)
    missing = [p for p in ctx.kept if p not in variables]
    if missing:
        raise FrameworkError(f"the plan prunes {missing[0]}, which is not a variable of this module")
    for path, kept in ctx.kept.items():
        var = variables[path]
        var.set_value(jnp.asarray(slice_leaf(var.get_value(), kept), dtype=var.get_value().dtype))
    for mpath, sub in nnx.iter_modules(target):
        handler = handler_for(sub)
        if handler is not None:  # handlers re-read widths from shapes: harmless when unpruned
            handler(sub, path_string(mpath), ctx)
    return target


def check_forward(module: nnx.Module, specs: list[jax.ShapeDtypeStruct]) -> None:
    """Trace the pruned module abstractly on the export's input specs.

    :raises FrameworkError: naming the shape error, when a layer's widths no longer fit.
    """
    probe = nnx.clone(module)
    probe.eval()
    graphdef, state = nnx.split(probe)

    def run(state: Any, *inputs: Any) -> Any:
        return nnx.merge(graphdef, state)(*inputs)

    try:
        jax.eval_shape(run, state, *specs)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FrameworkError(f"the pruned NNX module does not run on the export inputs: {first}") from exc
