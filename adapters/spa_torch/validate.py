"""Cross-check: the pruned module computes what the pruned ONNX computes."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch

from spa_core.errors import FrameworkError
from spa_core.runtime import run_model


def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """Tensors of a forward() result in the order ``torch.onnx.export`` makes graph outputs of
    them: tuples and lists in order, dicts (a detection backbone's feature maps) by value."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        return [t for item in out for t in flatten_outputs(item)]
    return []


def module_outputs(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(*inputs)
    finally:
        module.train(was_training)
    return [o.detach().cpu().numpy() for o in flatten_outputs(out)]


def relative_error(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if len(a) != len(b):
        return float("inf")
    worst = 0.0
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return float("inf")
        scale = max(float(np.abs(y).max()) if y.size else 0.0, 1e-6)
        worst = max(worst, float(np.abs(x - y).max()) / scale if y.size else 0.0)
    return worst


def check_against_onnx(module: torch.nn.Module, pruned_onnx: onnx.ModelProto, inputs: tuple, rtol: float) -> float:
    """Raise when the pruned module disagrees with the pruned ONNX (a width hard-coded in forward())."""
    names = [i.name for i in pruned_onnx.graph.input if i.name not in {t.name for t in pruned_onnx.graph.initializer}]
    feeds = {n: x.detach().cpu().numpy() for n, x in zip(names, inputs)}
    expected = list(run_model(pruned_onnx, feeds).values())
    try:
        got = module_outputs(module, inputs)
    except Exception as exc:
        raise FrameworkError(
            f"the pruned {type(module).__name__} fails to run ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "its forward() probably hard-codes a width (a reshape to a fixed size or head count). "
            "Use the pruned ONNX model (result.onnx), or --ignore that layer"
        ) from None
    err = relative_error(got, expected)
    if err > rtol:
        raise FrameworkError(
            f"the pruned {type(module).__name__} differs from the pruned ONNX model (relative error {err:.2g}); "
            "its forward() probably hard-codes a width. Use the pruned ONNX model, or --ignore that layer"
        )
    return err
