"""Which layers of a pruned module broke its forward(), from the exception's traceback.

A forward() that hard-codes a width (``reshape(B, N, 3, self.num_heads, C // 8)``,
``x.split([64, 64])``) raises once that width is pruned. The innermost frame of the
traceback whose ``self`` is a module of the pruned model is the layer at fault, with the
layers in the same role of the other repeated blocks (``blocks.#.attn``), which run the
same code. Their parameters are what :func:`spa_core.prune` then leaves unpruned.
"""

from __future__ import annotations

import re

import torch.nn as nn

from spa_core.types import ExportedModel


def failing_module(model: nn.Module, exc: BaseException) -> str | None:
    """Qualified name of the innermost module of ``model`` running when ``exc`` was raised."""
    names = {id(m): name for name, m in model.named_modules()}
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in names:
            return names[id(owner)]
    return None


def _role(name: str) -> str:
    """A module path with its indices blanked: the layer's role in repeated blocks.

    Indices are whole numeric segments (``blocks.3``) and the numbers ending the other
    segments but the last (``level4.tree1.tree2`` -> ``level#.tree#.tree#``: DLA names its
    repeated trees so). The last segment keeps its number: ``conv1`` is not ``conv2``, and
    DPN's ``conv2_1`` (the block of a stage that changes width) is not ``conv2_2``.
    """
    *parents, last = name.split(".")
    blanked = [re.sub(r"\d+$", "#", seg) for seg in parents]
    return ".".join([*blanked, "#" if last.isdigit() else last])


def same_code_modules(model: nn.Module, name: str) -> list[str]:
    """``name`` and the modules of ``model`` of its type in the same role of other repeated blocks.

    ``stages.0.blocks.2.attn`` stands for every ``stages.#.blocks.#.attn`` of the same
    class (``level4.tree1.tree2.tree1.convs.0`` for ``level#.tree#.tree#.tree#.convs.#``):
    repeated blocks run the same forward() code, so they hard-code the same width.
    """
    target, role = type(model.get_submodule(name)), _role(name)
    return [n for n, m in model.named_modules() if type(m) is target and _role(n) == role] or [name]


def onnx_parameters_under(modules: list[str], exported: ExportedModel) -> list[str]:
    """ONNX initializers bound to a parameter or buffer of one of ``modules`` (or their children)."""
    prefixes = tuple(f"{m}." for m in modules if m)
    everything = "" in modules
    return sorted(
        init for init, binding in exported.parameter_map.items()
        if everything or binding.native_name.startswith(prefixes)
    )


def node_module(node_name: str) -> str:
    """The module path of a TorchScript-exported node (``/stages/stages.0/conv/Conv`` -> ``stages.0.conv``)."""
    parts: list[str] = []
    for seg in node_name.split("/")[1:-1]:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def onnx_nodes_under(modules: list[str], exported: ExportedModel) -> list[str]:
    """Names of the ONNX nodes exported from ``modules`` (ignoring them blocks their inputs too)."""
    wanted = set(modules)
    found = []
    for node in exported.onnx.graph.node:
        path = node_module(node.name)
        while path and path not in wanted:
            path = path.rpartition(".")[0]
        if path in wanted:
            found.append(node.name)
    return found
