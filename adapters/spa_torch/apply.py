"""Apply a plan to a live ``nn.Module``: slice parameters, buffers and gradients, fix attributes."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from spa_core.errors import FrameworkError
from spa_core.plan import Plan
from spa_core.types import ExportedModel

from .export import named_tensors
from .modules import snapshot, update_module


def native_slices(plan: Plan, exported: ExportedModel) -> dict[str, dict[int, list[int]]]:
    """Kept indices per native tensor name and native axis.

    ONNX constants with no native tensor (zeros an LSTM's initial state is built from,
    a mask made in forward()) are skipped: forward() rebuilds them from the new widths.
    Whether it really does is checked afterwards against the pruned ONNX.
    """
    slices: dict[str, dict[int, list[int]]] = {}
    for init_name, entry in plan.parameters.items():
        binding = exported.parameter_map.get(init_name)
        if binding is None:
            continue
        for axis, kept in entry.kept.items():
            native_axis = binding.axes[axis]
            if native_axis is None:
                raise FrameworkError(f"axis {axis} of '{init_name}' has no counterpart in '{binding.native_name}'")
            slices.setdefault(binding.native_name, {})[native_axis] = kept
    return slices


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def _slice(t: torch.Tensor, axes: dict[int, list[int]]) -> torch.Tensor:
    for axis, kept in sorted(axes.items()):
        t = t.index_select(axis, torch.as_tensor(np.asarray(kept, dtype=np.int64), device=t.device))
    return t.contiguous()


def apply_plan_to_module(model: nn.Module, plan: Plan, exported: ExportedModel, inplace: bool = False) -> nn.Module:
    """Return ``model`` pruned by ``plan`` (a deep copy unless ``inplace``)."""
    target = model if inplace else copy.deepcopy(model)
    slices = native_slices(plan, exported)
    tensors = named_tensors(target)
    before = {id(m): snapshot(m) for m in target.modules()}
    done: dict[int, dict[int, list[int]]] = {}
    touched_modules: set[int] = set()
    for name, axes in slices.items():
        if name not in tensors:
            raise FrameworkError(f"'{name}' is not a parameter or buffer of {type(model).__name__}")
        tensor = tensors[name]
        if id(tensor) in done:
            if done[id(tensor)] != axes:
                raise FrameworkError(f"shared tensor '{name}' is pruned differently by two of its uses")
            continue
        done[id(tensor)] = axes
        owner, attr = _owner(target, name)
        new = _slice(tensor.detach(), axes)
        with torch.no_grad():
            if isinstance(tensor, nn.Parameter):
                tensor.data = new
                if tensor.grad is not None:
                    tensor.grad = _slice(tensor.grad, axes)
            else:
                owner._buffers[attr] = new
        touched_modules.add(id(owner))
        for module in target.modules():  # every module holding this tensor (shared weights)
            if any(p is tensor for p in module._parameters.values()):
                touched_modules.add(id(module))
    # a module's attributes may depend on a child's tensors (MultiheadAttention.out_proj)
    parents = {id(child): (parent, name) for parent in target.modules() for name, child in parent.named_children()}
    for mid in list(touched_modules):
        if mid in parents:
            touched_modules.add(id(parents[mid][0]))
    for module in list(target.modules()):
        if id(module) in touched_modules:
            try:
                replacement = update_module(module, before[id(module)])
            except ValueError as exc:
                raise FrameworkError(f"cannot prune {type(module).__name__}: {exc}") from None
            if replacement is not None:
                if id(module) not in parents:
                    return replacement
                parent, name = parents[id(module)]
                setattr(parent, name, replacement)
    return target
