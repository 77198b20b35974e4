"""How a Flax linen model is handed to SPA and handed back.

A linen ``Module`` holds no weights: the model is the module *and* its variables. Pass
either ``spa_jax.LinenModel(module, variables, apply_kwargs={"train": False})`` or the
plain tuple ``(module, variables)`` to :func:`spa_core.prune`; the result is always a
:class:`LinenModel`::

    pruned = spa_core.prune(spa_jax.LinenModel(cnn, variables, {"train": False}), x)
    y = pruned(x)                       # module.apply(variables, x, **apply_kwargs)
    pruned.module, pruned.variables     # re-created module, pruned params/batch_stats

When the module's constructor cannot express the new widths (a width hard-coded in
``__call__``, a width derived by a formula SPA cannot invert) ``pruned.module`` is
``None`` and ``pruned.notes`` says which parameter axis could not be matched; the pruned
variables are still returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spa_core.errors import FrameworkError


@dataclass
class LinenModel:
    """A linen module with its variables (and the keyword arguments of ``apply``).

    Attributes:
        module: the ``flax.linen.Module`` (``None`` after pruning when it could not be
            re-created with the new widths; see ``notes``).
        variables: the variables pytree, ``{"params": ..., "batch_stats": ...}``.
        apply_kwargs: keyword arguments for ``module.apply`` in inference mode, such as
            ``{"train": False}``; SPA exports and checks the model with them.
        notes: what SPA could not do when re-creating the module (empty when all went well).
    """

    module: Any
    variables: Mapping[str, Any]
    apply_kwargs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        """Run ``module.apply(variables, *inputs, **apply_kwargs, **kwargs)``."""
        if self.module is None:
            raise FrameworkError(
                "this pruned linen model has no module to run: " + "; ".join(self.notes)
            )
        return self.module.apply(self.variables, *inputs, **{**self.apply_kwargs, **kwargs})
