"""The criterion interface and the registry of installed criteria.

A criterion scores the channels of one parameter along one axis; the engine sums
those scores over each channel's positions, reduces them over the members of a group
(sum / mean / max) and normalises them (see :mod:`spa_core.importance`). That is how
any per-weight criterion becomes a structured one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import InvalidOptionError

# What a criterion may need; the engine asks the user for data only when needed.
WEIGHTS = "weights"
GRADIENTS = "gradients"
GRADIENT_BATCHES = "gradient_batches"  # one gradient per calibration batch, besides their mean
HESSIAN_VECTOR = "hessian_vector_products"
HESSIAN_DIAGONAL = "hessian_diagonal"
ACTIVATIONS = "activations"
DATA_NEEDS = frozenset({GRADIENTS, GRADIENT_BATCHES, HESSIAN_VECTOR, HESSIAN_DIAGONAL, ACTIVATIONS})
"""Needs that require calibration data and a loss (everything but ``weights``)."""


@dataclass
class ScoringContext:
    """What a criterion may read besides the weight itself.

    Every array is keyed by ONNX initializer name and laid out like the initializer
    (a gradient provider maps native gradients through the adapter's ``parameter_map``).

    Attributes:
        gradients: initializer name -> gradient of the loss, averaged over the
            calibration batches (same shape as the weight).
        hvp: initializer name -> Hessian-gradient product ``H @ g`` (``g`` = ``gradients``).
        activations: value name -> activation samples.
        rng: random generator (seeded by the engine, for reproducible ``random``).
        extras: anything a third-party criterion needs.
        gradient_batches: one gradient dict per calibration batch (criteria that average
            a per-batch score, such as ``taylor``); empty when not computed.
        hessian_diagonal: initializer name -> estimate of ``diag(H)``.
        weights: initializer name -> the native parameter value the derivatives belong
            to, where it differs from the initializer (an exporter folded BatchNorm
            into it); criteria pair derivatives with :meth:`parameter`.
        analysis: the :class:`spa_core.analysis.Analysis` being scored (graph and
            groups), for criteria that look at a parameter's role (``bn_scale``).
    """

    gradients: dict[str, np.ndarray] = field(default_factory=dict)
    hvp: dict[str, np.ndarray] = field(default_factory=dict)
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    extras: dict[str, Any] = field(default_factory=dict)
    gradient_batches: list[dict[str, np.ndarray]] = field(default_factory=list)
    hessian_diagonal: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    analysis: Any = None

    def parameter(self, name: str, weight: np.ndarray) -> np.ndarray:
        """The value derivatives of ``name`` refer to: the native one if known, else ``weight``."""
        return self.weights.get(name, weight)


class Criterion:
    """Base class of importance criteria.

    Subclasses set ``name`` (what ``--criterion`` takes), ``needs`` (a subset of
    ``{"weights", "gradients", "gradient_batches", "hessian_vector_products",
    "hessian_diagonal", "activations"}``) and implement :meth:`channel_scores`. A criterion whose ``needs``
    hold only ``"weights"`` is data-free: SPA never asks for calibration data for it.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({WEIGHTS})

    def channel_scores(self, name: str, weight: np.ndarray, axis: int, ctx: ScoringContext) -> np.ndarray:
        """Score each index of ``weight`` along ``axis`` (higher = more important).

        :param name: the ONNX initializer's name (to look up gradients in ``ctx``).
        :return: a 1-D array of ``weight.shape[axis]`` non-negative scores.
        """
        raise NotImplementedError

    @property
    def needs_data(self) -> bool:
        """True when scoring needs calibration batches and a loss."""
        return bool(self.needs & DATA_NEEDS)

    def __repr__(self) -> str:
        return f"<criterion {self.name}>"


def reduce_other_axes(values: np.ndarray, axis: int) -> np.ndarray:
    """Sum ``values`` over every axis but ``axis``."""
    other = tuple(a for a in range(values.ndim) if a != axis)
    return values.sum(axis=other) if other else values


def available_criteria() -> dict[str, Criterion]:
    """Every criterion of every installed plugin, by name."""
    from ..plugins import plugin_manager

    table: dict[str, Criterion] = {}
    for plugin_result in plugin_manager().hook.spa_register_criteria():
        for crit in plugin_result or []:
            table.setdefault(crit.name, crit)
    return dict(sorted(table.items()))


def get_criterion(name: str | Criterion) -> Criterion:
    if isinstance(name, Criterion):
        return name
    table = available_criteria()
    if name not in table:
        raise InvalidOptionError(f"unknown criterion '{name}'; available: {', '.join(table)}")
    return table[name]
