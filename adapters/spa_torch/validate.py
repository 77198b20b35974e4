"""Cross-check: the pruned module computes what the pruned ONNX computes."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch

from spa_core.errors import FrameworkError, HardcodedWidthError
from spa_core.runtime import run_model
from spa_core.types import ExportedModel

from .attention_scale import recording_attention_widths, rescaled_attention
from .culprit import failing_module, onnx_nodes_under, onnx_parameters_under, same_code_modules


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


def check_against_onnx(module: torch.nn.Module, pruned_onnx: onnx.ModelProto, inputs: tuple, rtol: float,
                       exported: ExportedModel | None = None) -> float:
    """Raise when the pruned module disagrees with the pruned ONNX (a width hard-coded in forward()).

    With ``exported``, a pruned module that fails to run raises :class:`HardcodedWidthError`
    naming the parameters of the layers at fault, so that the pruning can be redone without them.
    """
    names = [i.name for i in pruned_onnx.graph.input if i.name not in {t.name for t in pruned_onnx.graph.initializer}]
    feeds = {n: x.detach().cpu().numpy() for n, x in zip(names, inputs)}
    expected = list(run_model(pruned_onnx, feeds).values())
    try:
        got = module_outputs(module, inputs)
    except Exception as exc:
        where = failing_module(module, exc)
        first = str(exc).splitlines()[0] if str(exc) else ""
        message = (
            f"the pruned {type(module).__name__} fails to run ({type(exc).__name__}: {first})"
            + (f" in '{where}' ({type(module.get_submodule(where)).__name__})" if where else "")
            + "; its forward() probably hard-codes a width (a reshape to a fixed size or head count). "
            "Use the pruned ONNX model (result.onnx), or --ignore that layer"
        )
        if exported is not None and where is not None:
            layers = same_code_modules(module, where)
            params = onnx_parameters_under(layers, exported)
            nodes = onnx_nodes_under(layers, exported)
            if params or nodes:
                raise HardcodedWidthError(
                    message, params, f"{where} ({type(module.get_submodule(where)).__name__})", nodes
                ) from None
        raise FrameworkError(message) from None
    err = relative_error(got, expected)
    if err > rtol and exported is not None:
        _raise_for_rescaled_attention(module, inputs, exported, err)
    if err > rtol:
        raise FrameworkError(
            f"the pruned {type(module).__name__} differs from the pruned ONNX model (relative error {err:.2g}); "
            "its forward() probably hard-codes a width. Use the pruned ONNX model, or --ignore that layer"
        )
    return err


def _raise_for_rescaled_attention(module: torch.nn.Module, inputs: tuple, exported: ExportedModel, err: float) -> None:
    """Name the attention layers whose implicit ``1/sqrt(d)`` changed with the pruning, if any."""
    with recording_attention_widths(module) as widths:
        module_outputs(module, inputs)
    changed = rescaled_attention(exported.extras.get("attention_widths") or {}, widths)
    if not changed:
        return
    layers = sorted({n for name in changed for n in same_code_modules(module, name)})
    where = ", ".join(f"{n} ({type(module.get_submodule(n)).__name__})" for n in changed[:3])
    raise HardcodedWidthError(
        f"the pruned {type(module).__name__} differs from the pruned ONNX model (relative error {err:.2g}): "
        f"the attention in {where} scales by 1/sqrt(head width), which the pruning changed",
        onnx_parameters_under(layers, exported), where, onnx_nodes_under(layers, exported),
    )
