"""From a differentiable model to the derivatives a criterion asked for.

Every provider (torch, Keras, Flax, ONNX) implements the small :class:`Differentiable`
protocol: the gradient of the loss on one batch, and a Hessian-vector product on one
batch, both as numpy dicts keyed by the provider's parameter names. This module builds
what criteria read from those two primitives, identically for every framework:

* ``gradients``: ``g = Σ_b n_b g_b / Σ_b n_b`` (the gradient of the mean loss);
* ``gradient_batches``: each ``g_b`` (only when a criterion needs ``gradient_batches``);
* ``hvp``: ``Hg = Σ_b n_b H_b g / Σ_b n_b`` (second pass, ``g`` fixed, as in GraSP);
* ``hessian_diagonal``: Hutchinson's ``mean_z z ⊙ Hz`` with Rademacher ``z``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..criteria.base import GRADIENT_BATCHES, GRADIENTS, HESSIAN_DIAGONAL, HESSIAN_VECTOR
from .calibration import Batch

Arrays = dict[str, np.ndarray]


class Differentiable(Protocol):
    """A model and a loss that SPA can differentiate (one per framework)."""

    def parameter_values(self) -> Arrays:
        """The parameters that derivatives are taken for, by the provider's names."""

    def gradient(self, batch: Batch) -> Arrays:
        """``d mean_loss(batch) / dθ`` for every parameter."""

    def hvp(self, batch: Batch, vector: Arrays) -> Arrays:
        """``H_batch @ vector`` (``H`` the Hessian of the batch's mean loss)."""


@dataclass
class Derivatives:
    """What :func:`compute_derivatives` produced, keyed by the provider's parameter names."""

    gradients: Arrays = field(default_factory=dict)
    gradient_batches: list[Arrays] = field(default_factory=list)
    hvp: Arrays = field(default_factory=dict)
    hessian_diagonal: Arrays = field(default_factory=dict)


def compute_derivatives(
    fn: Differentiable,
    needs: Iterable[str],
    batches: list[Batch],
    rng: np.random.Generator,
    hessian_samples: int = 4,
) -> Derivatives:
    """Compute only what ``needs`` names (gradients are computed whenever any derivative is)."""
    needs = set(needs)
    out = Derivatives()
    if not needs & {GRADIENTS, GRADIENT_BATCHES, HESSIAN_VECTOR, HESSIAN_DIAGONAL}:
        return out
    keep_batches = GRADIENT_BATCHES in needs
    total = float(sum(b.size for b in batches))
    acc: Arrays = {}
    for batch in batches:
        g = fn.gradient(batch)
        _accumulate(acc, g, batch.size / total)
        if keep_batches:
            out.gradient_batches.append(g)
    out.gradients = acc
    if HESSIAN_VECTOR in needs:
        out.hvp = _weighted_hvp(fn, batches, acc, total)
    if HESSIAN_DIAGONAL in needs:
        out.hessian_diagonal = hutchinson_diagonal(fn, batches, rng, hessian_samples)
    return out


def hutchinson_diagonal(
    fn: Differentiable, batches: list[Batch], rng: np.random.Generator, samples: int
) -> Arrays:
    """``diag(H) ≈ mean_z z ⊙ Hz`` over ``samples`` Rademacher vectors per batch (Hutchinson 1990)."""
    params = fn.parameter_values()
    total = float(sum(b.size for b in batches))
    acc: Arrays = {}
    for batch in batches:
        for _ in range(samples):
            z = {n: rng.choice(np.array([-1.0, 1.0], np.float32), size=p.shape) for n, p in params.items()}
            hz = fn.hvp(batch, z)
            _accumulate(acc, {n: z[n] * v for n, v in hz.items()}, batch.size / total / samples)
    return acc


def _weighted_hvp(fn: Differentiable, batches: list[Batch], vector: Arrays, total: float) -> Arrays:
    acc: Arrays = {}
    for batch in batches:
        _accumulate(acc, fn.hvp(batch, vector), batch.size / total)
    return acc


def _accumulate(acc: Arrays, values: Arrays, weight: float) -> None:
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64) * weight
        if name in acc:
            acc[name] += v
        else:
            acc[name] = v
