"""Assertions for tests of SPA and of third-party rules and adapters."""

from __future__ import annotations

from .api import PruneResult
from .oracle import oracle_error


def assert_oracle(result: PruneResult, rtol: float = 1e-4, seed: int = 0) -> float:
    """Assert that the pruned model equals the original with removed channels zeroed."""
    err = oracle_error(result.analysis, result.removed, result.onnx, seed=seed)
    assert err <= rtol, f"oracle violated: relative error {err:.3g} > {rtol}"
    return err
