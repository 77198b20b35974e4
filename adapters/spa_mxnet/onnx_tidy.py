"""Tidy the ONNX model MXNet's exporter writes (main environment, current onnx).

* MXNet lists every initializer as a graph input too; such inputs are dropped, so the
  only inputs left are the data inputs (and nothing can feed a weight at run time).
* Some exported nodes (Conv, pooling, Flatten) have no name; each gets its first
  output's name, which is unique, so plan attributes and reports can name them.
* Data inputs get the static shapes used for the export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx

from spa_core.errors import FrameworkError


def tidy(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """Return a tidied copy of ``model`` (see the module docstring) and check it."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(keep)

    taken = {n.name for n in m.graph.node if n.name}
    for node in m.graph.node:
        if not node.name and node.output:
            name = node.output[0]
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)

    for vi in m.graph.input:
        shape = input_shapes.get(vi.name)
        if shape is None:
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise FrameworkError(
                f"MXNet exported input {vi.name!r} with {len(dims)} dimensions, expected shape {tuple(shape)}"
            )
        for dim, value in zip(dims, shape):
            dim.Clear()
            dim.dim_value = int(value)
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise FrameworkError(f"MXNet's exporter wrote an invalid ONNX model: {first}") from None
    return m
