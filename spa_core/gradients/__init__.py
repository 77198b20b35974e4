"""Gradients and Hessian-vector products for data-driven pruning criteria.

Users only pass ``data=`` and ``loss=`` to :func:`spa_core.prune` /
:func:`spa_core.prune_onnx`; this package turns them into a
:class:`~spa_core.criteria.base.ScoringContext`:

* :mod:`.calibration` — the batches and the loss (:class:`Calibration`);
* :mod:`.driver` — gradients, ``Hg`` and the Hessian diagonal from two primitives;
* :mod:`.providers` — which framework differentiates the model: torch autograd
  (:mod:`.torch_provider`), ``tf.GradientTape`` (:mod:`.keras_provider`), ``jax.grad``
  (:mod:`.flax_provider`), or the ONNX graph run in torch (:mod:`.onnx_provider`);
* :mod:`.layout` — native arrays to ONNX initializer layout through ``parameter_map``;
* :mod:`.context` — the context builders the API calls.
"""

from .calibration import Batch, Calibration
from .context import native_scoring_context, onnx_scoring_context, require_calibration
from .driver import Derivatives, Differentiable, compute_derivatives
from .providers import get_provider, register_provider

__all__ = [
    "Batch",
    "Calibration",
    "Derivatives",
    "Differentiable",
    "compute_derivatives",
    "get_provider",
    "native_scoring_context",
    "onnx_scoring_context",
    "register_provider",
    "require_calibration",
]
