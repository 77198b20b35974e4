"""Split sizes a module keeps as an attribute follow the pruned ``Split`` they were exported to.

``torch.split(x, self.split_indices, dim=-1)`` (timm's MambaOut) exports as an ONNX
``Split`` whose sizes are a constant. Pruning rewrites that constant (``[128, 80, 48]``
-> ``[90, 56, 34]``), but the module still holds the old tuple and its forward() fails.
The ``Split`` node's name gives the module that made it (the TorchScript exporter names
nodes by module path); the attribute of that module holding exactly the old sizes is
replaced by the new ones. The match is by value on the one module that exported the
node, and the pruned module is checked against the pruned ONNX afterwards, so a wrong
match cannot go unnoticed.
"""

from __future__ import annotations

import onnx
import torch.nn as nn
from onnx import numpy_helper

from spa_core.graph import constant_tensors

from .culprit import node_module


def split_sizes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """``{Split node name: sizes}`` for the Splits of ``model`` with constant sizes."""
    constants = constant_tensors(model)
    found: dict[str, tuple[int, ...]] = {}
    for node in model.graph.node:
        if node.op_type != "Split" or not node.name:
            continue
        sizes = constants.get(node.input[1]) if len(node.input) > 1 else None
        if sizes is not None and sizes.data_type == onnx.TensorProto.INT64:
            found[node.name] = tuple(int(v) for v in numpy_helper.to_array(sizes).ravel())
        else:
            attr = next((a for a in node.attribute if a.name == "split"), None)
            if attr is not None:
                found[node.name] = tuple(int(v) for v in attr.ints)
    return found


def update_split_attributes(module: nn.Module, original: onnx.ModelProto, pruned: onnx.ModelProto) -> list[str]:
    """Replace attributes holding a pruned Split's old sizes; returns ``module.attribute`` names changed."""
    after = split_sizes(pruned)
    changed = []
    for node_name, old in split_sizes(original).items():
        new = after.get(node_name)
        if new is None or new == old:
            continue
        try:
            owner = module.get_submodule(node_module(node_name))
        except AttributeError:
            continue
        for attr, value in list(vars(owner).items()):
            if (isinstance(value, tuple | list) and len(value) == len(old)
                    and all(isinstance(v, int) for v in value) and tuple(value) == old):
                setattr(owner, attr, type(value)(new))
                changed.append(f"{node_module(node_name)}.{attr}".lstrip("."))
    return changed
