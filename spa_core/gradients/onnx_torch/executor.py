"""Run an ONNX graph in torch, so that it can be differentiated.

Used when the user hands SPA an ONNX model and a data-driven criterion: the graph is
executed operator by operator with torch functions (:mod:`.registry`), with every float
initializer replaced by a tensor the caller passes in. Gradients and Hessian-vector
products then come from torch autograd, already keyed by ONNX initializer name and in
the initializer's layout, which is exactly what criteria read.

Why not onnx2torch: it renames initializers (mapping back needs value matching), needs
torchvision (which breaks with the CPU torch unless its op schemas are faked), and
rejects current exporters' output (ReduceMean v18, ``SAME_UPPER``). A table of ~90 ops
is smaller than those workarounds, and an unknown op is reported by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from ...errors import FrameworkError
from . import ops_math, ops_nn, ops_shape  # noqa: F401  (register the operators)
from .ops_shape import tensor_attribute
from .registry import OPS, OpFn

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
# running statistics are constants, not parameters (no gradient is taken for them)
STATISTIC_INPUTS = {"BatchNormalization": (3, 4)}


@dataclass(frozen=True)
class Step:
    fn: OpFn
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


def _attributes(node: onnx.NodeProto, opset: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {"_op": node.op_type, "_opset": opset, "_outputs": len(node.output)}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = tensor_attribute(value)
        attrs[attr.name] = value
    return attrs


class OnnxTorchGraph:
    """An ONNX model as a torch function of its inputs and its float initializers.

    ``parameters`` are the float initializers with at least one axis, except running
    statistics; everything else is a constant.

    :raises FrameworkError: when the graph has operators the executor does not know
        (all of them are named) or sub-graphs (``If``/``Loop``).
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        unknown = sorted({f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in graph.node
                          if n.domain not in ("", "ai.onnx") or n.op_type not in OPS})
        if unknown:
            raise FrameworkError(
                "cannot differentiate this ONNX model: the ONNX executor has no rule for "
                + ", ".join(unknown) + "; pass the native model to spa_core.prune instead"
            )
        self.parameters: dict[str, torch.Tensor] = {}
        self.constants: dict[str, torch.Tensor] = {}
        statistics = {name for n in graph.node for pos, name in enumerate(n.input)
                      if STATISTIC_INPUTS.get(n.op_type) and pos in STATISTIC_INPUTS[n.op_type]}
        for init in graph.initializer:
            array = np.array(numpy_helper.to_array(init))
            trainable = init.data_type in FLOAT_TYPES and array.ndim > 0 and init.name not in statistics
            table = self.parameters if trainable else self.constants
            table[init.name] = torch.from_numpy(array)
        names = set(self.parameters) | set(self.constants)
        self.input_names = [i.name for i in graph.input if i.name not in names]
        self.output_names = [o.name for o in graph.output]
        self.input_shapes = {i.name: [d.dim_value if d.HasField("dim_value") else None
                                      for d in i.type.tensor_type.shape.dim] for i in graph.input}
        self.steps = [
            Step(OPS[n.op_type], tuple(n.input), tuple(n.output), _attributes(n, opset)) for n in graph.node
        ]

    def run(
        self, params: Mapping[str, torch.Tensor], inputs: tuple[torch.Tensor, ...], names: Sequence[str] | None = None,
    ) -> list[torch.Tensor]:
        """The graph's outputs (or the values ``names``, intermediate ones included) with
        ``params`` (by initializer name) and ``inputs`` (in order)."""
        if len(inputs) != len(self.input_names):
            raise FrameworkError(
                f"the ONNX model takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                f"a calibration batch gave {len(inputs)}"
            )
        env: dict[str, Any] = {**self.constants, **self.parameters, **params}
        env.update(zip(self.input_names, inputs))
        for step in self.steps:
            result = step.fn([env[n] if n else None for n in step.inputs], step.attrs)
            if isinstance(result, tuple | list):
                env.update((name, value) for name, value in zip(step.outputs, result) if name)
            else:
                env[step.outputs[0]] = result
        return [env[n] for n in (self.output_names if names is None else names)]

    def use_batch_statistics(self) -> None:
        """Run every BatchNormalization with the batch's mean and variance (training mode's
        normalisation) instead of its running statistics, which stay unchanged."""
        self.steps = [Step(s.fn, s.inputs, s.outputs, {**s.attrs, "_batch_statistics": True})
                      if s.attrs["_op"] == "BatchNormalization" else s for s in self.steps]

    def in_float64(self) -> None:
        """Compute in float64: float32 initializers and casts to float32 become float64.

        A reference for numerically sensitive models (random deep networks), where float32
        rounding alone moves the outputs by more than a check's tolerance; callers pass
        float64 inputs.
        """
        for table in (self.parameters, self.constants):
            for name, value in table.items():
                if value.dtype == torch.float32:
                    table[name] = value.double()
        self.steps = [Step(s.fn, s.inputs, s.outputs, {**s.attrs, "to": onnx.TensorProto.DOUBLE})
                      if s.attrs["_op"] == "Cast" and s.attrs.get("to") == onnx.TensorProto.FLOAT else s
                      for s in self.steps]

    def declared_batch(self) -> int | None:
        """The fixed leading dimension of the first input, if the model declares one."""
        shape = self.input_shapes.get(self.input_names[0]) if self.input_names else None
        return shape[0] if shape else None
