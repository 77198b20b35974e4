"""SPA's JAX/Flax adapter.

Prune Flax NNX modules and linen models through ONNX (exported with jax2onnx)::

    import spa_core, spa_jax

    pruned_nnx = spa_core.prune(nnx_model, x, ratio=0.5)                 # an nnx.Module
    pruned = spa_core.prune(spa_jax.LinenModel(module, variables, {"train": False}), x)
    pruned.module, pruned.variables, pruned.notes                         # a LinenModel

See :mod:`spa_jax.plugin` for the hooks and :mod:`spa_jax.probe` for how ONNX
initializers are bound to pytree leaves.
"""

from .linen_model import LinenModel

__all__ = ["LinenModel"]
