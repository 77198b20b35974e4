"""An in-memory view over an ONNX model for analysis.

The view indexes values by name (producer node, consumer nodes), keeps initializers
as numpy arrays and records the static shape of every value. It reads the
``ModelProto`` and never changes it; surgery writes a new model.

Why not ``onnx_ir``: the engine needs only name-indexed lookups and must write the
result back with every initializer name and node untouched except what it prunes; a
thin index over the protobuf does that with no conversion round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import onnx
from onnx import numpy_helper

FLOAT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
}

FROZEN_KEY = "spa.frozen"
"""``metadata_props`` key: JSON list of constants that describe a computation, not weights."""


def mark_frozen(model: onnx.ModelProto, names: list[str]) -> None:
    """Record that the constants ``names`` of ``model`` must never be pruned.

    An exporter that had to rewrite an operation (an antialiased resize, an adaptive pool)
    as matrix products leaves constant matrices that look like weights to the rules; an
    adapter marks them so. The mark is kept in the model, so a pruned model keeps it too.
    """
    names = sorted(set(frozen_names(model)) | set(names))
    for prop in model.metadata_props:
        if prop.key == FROZEN_KEY:
            prop.value = json.dumps(names)
            return
    if names:
        model.metadata_props.add(key=FROZEN_KEY, value=json.dumps(names))


def frozen_names(model: onnx.ModelProto) -> list[str]:
    """The constants :func:`mark_frozen` recorded in ``model``."""
    for prop in model.metadata_props:
        if prop.key == FROZEN_KEY:
            return list(json.loads(prop.value))
    return []


def constant_tensors(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Initializers and the tensors of ``Constant`` nodes (their ``value`` form), by value name,
    as an exporter wrote them (before :func:`spa_core.prepare.prepare` turns the nodes into
    initializers)."""
    found = {t.name: t for t in model.graph.initializer}
    found.update({node.output[0]: attr.t for node in model.graph.node if node.op_type == "Constant"
                  for attr in node.attribute if attr.name == "value"})
    return found


class InitializerTable(Mapping[str, np.ndarray]):
    """The initializers of a model as numpy arrays, by name.

    Small tensors (shapes, indices, constants the rules read again and again) are converted
    once and kept; weights are converted on each access and not kept, so that the graph does
    not hold a second copy of a model's weights beside its protobuf (gigabytes for the
    largest models; each weight is read a few times: scoring, surgery).
    """

    CACHED_ELEMENTS = 1 << 16

    def __init__(self, tensors: Iterable[onnx.TensorProto]) -> None:
        self._protos = {t.name: t for t in tensors}
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._cache:
            return self._cache[name]
        array = numpy_helper.to_array(self._protos[name])
        if array.size <= self.CACHED_ELEMENTS:
            self._cache[name] = array
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._protos)

    def __len__(self) -> int:
        return len(self._protos)

    def __contains__(self, name: object) -> bool:
        return name in self._protos

    def ndim(self, name: str) -> int:
        return len(self._protos[name].dims)


@dataclass
class Graph:
    """Name-indexed view of an ONNX model with static shapes.

    Attributes:
        model: the (prepared) ONNX model.
        shapes: static shape of each value whose shape is known.
        dtypes: ONNX element type of each value whose type is known.
    """

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        return list(self.model.graph.node)

    @cached_property
    def initializers(self) -> InitializerTable:
        return InitializerTable(self.model.graph.initializer)

    @cached_property
    def initializer_types(self) -> dict[str, int]:
        return {t.name: t.data_type for t in self.model.graph.initializer}

    @cached_property
    def input_names(self) -> list[str]:
        inits = set(self.initializers)
        return [i.name for i in self.model.graph.input if i.name not in inits]

    @cached_property
    def output_names(self) -> list[str]:
        return [o.name for o in self.model.graph.output]

    @cached_property
    def producer(self) -> dict[str, int]:
        """Value name -> index of the node that produces it."""
        return {out: i for i, n in enumerate(self.model.graph.node) for out in n.output if out}

    @cached_property
    def consumers(self) -> dict[str, list[tuple[int, int]]]:
        """Value name -> [(node index, input position)] of the nodes that read it."""
        table: dict[str, list[tuple[int, int]]] = {}
        for i, n in enumerate(self.model.graph.node):
            for k, name in enumerate(n.input):
                if name:
                    table.setdefault(name, []).append((i, k))
        return table

    @cached_property
    def opsets(self) -> dict[str, int]:
        table = {(o.domain or ""): o.version for o in self.model.opset_import}
        if "ai.onnx" in table:
            table[""] = table.pop("ai.onnx")
        return table

    def is_parameter(self, name: str) -> bool:
        """A float initializer with at least one axis: something pruning can slice."""
        return (
            name in self.initializers
            and self.initializer_types[name] in FLOAT_TYPES
            and self.initializers.ndim(name) > 0
        )

    def node_name(self, index: int) -> str:
        node = self.model.graph.node[index]
        return node.name or f"{node.op_type}_{index}"
