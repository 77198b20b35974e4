"""Reading derivatives out of a :class:`ScoringContext` for the data-driven criteria.

A derivative table (``gradients``, ``hvp``, ``hessian_diagonal``) that is empty means the
caller never computed it: that is the user's to fix (pass calibration data), so it is an
error. A table that has entries but not this initializer means the initializer has no
native counterpart (an exporter's constant): it contributes zeros.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidOptionError
from .base import ScoringContext

TABLES = {
    "gradients": lambda ctx: ctx.gradients,
    "hvp": lambda ctx: ctx.hvp,
    "hessian_diagonal": lambda ctx: ctx.hessian_diagonal,
}


def derivative(ctx: ScoringContext, table: str, name: str, weight: np.ndarray, criterion: str) -> np.ndarray:
    """``ctx.<table>[name]`` as float64 (zeros when this initializer has none)."""
    values = TABLES[table](ctx)
    if not values:
        raise InvalidOptionError(
            f"criterion '{criterion}' needs {table.replace('_', ' ')} of the loss: pass calibration data "
            "and a loss (data=[(inputs, targets), ...], loss='cross_entropy')"
        )
    value = values.get(name)
    if value is None:
        return np.zeros(weight.shape, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    if value.shape != weight.shape:
        raise InvalidOptionError(
            f"the {table} of '{name}' have shape {value.shape}, but the initializer has {weight.shape}"
        )
    return value


def parameter(ctx: ScoringContext, name: str, weight: np.ndarray) -> np.ndarray:
    """The parameter value (float64) that the derivatives of ``name`` belong to."""
    return np.asarray(ctx.parameter(name, weight), dtype=np.float64)
