"""What a propagation rule sees and says.

A *channel dimension* is ``(value_name, axis)``. Every element along a dimension is an
*atom*; a rule ties atoms of its node's inputs and outputs that must be removed
together, blocks dimensions that must not change, and declares how constant inputs
(shape targets, split sizes) and attributes must be rewritten once channels are gone.

Any input or output dimension a rule does not mention is blocked: a rule that forgets
an axis makes the engine refuse, never guess.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper

if TYPE_CHECKING:
    from ..analysis import AnalysisBuilder

Dim = tuple[str, int]


class MissingShapeError(Exception):
    """A value's static shape is unknown; the node becomes a barrier."""


class RuleBarrier(Exception):
    """Raised by a rule: this node cannot be propagated through (with the reason)."""


class SurgeryView:
    """What rewriters may ask after a plan is chosen: new sizes and kept positions."""

    def __init__(self, kept: Callable[[str, int], np.ndarray], sizes: Callable[[str, int], int]):
        self._kept = kept
        self._sizes = sizes

    def kept(self, value: str, axis: int) -> np.ndarray:
        """Positions along ``(value, axis)`` that survive, in the original indexing."""
        return self._kept(value, axis)

    def new_size(self, value: str, axis: int) -> int:
        return int(self._sizes(value, axis))


InputRewriter = Callable[[SurgeryView, np.ndarray], np.ndarray]
AttributeRewriter = Callable[[SurgeryView], Any]


class RuleContext:
    """The interface between one node and the analysis builder."""

    def __init__(self, builder: AnalysisBuilder, node: onnx.NodeProto, index: int, opset: int):
        self._b = builder
        self.node = node
        self.index = index
        self.opset = opset
        self.mentioned: set[Dim] = set()

    # ------------------------------------------------------------------ reading
    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def name(self) -> str:
        return self._b.graph.node_name(self.index)

    @property
    def inputs(self) -> list[str]:
        return list(self.node.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.node.output)

    def has_input(self, i: int) -> bool:
        return i < len(self.node.input) and bool(self.node.input[i])

    def attr(self, name: str, default: Any = None) -> Any:
        for a in self.node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def shape(self, value: str) -> tuple[int, ...]:
        shape = self._b.graph.shapes.get(value)
        if shape is None:
            raise MissingShapeError(value)
        return shape

    def in_shape(self, i: int) -> tuple[int, ...]:
        return self.shape(self.node.input[i])

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        return self.shape(self.node.output[i])

    def const(self, i: int) -> np.ndarray | None:
        """The value of input ``i`` when it is a constant (initializer), else ``None``."""
        if not self.has_input(i):
            return None
        return self._b.graph.initializers.get(self.node.input[i])

    def inp(self, i: int, axis: int) -> Dim:
        """The dimension ``axis`` (negative allowed) of input ``i``."""
        return (self.node.input[i], _norm_axis(axis, len(self.in_shape(i))))

    def out(self, i: int, axis: int) -> Dim:
        return (self.node.output[i], _norm_axis(axis, len(self.out_shape(i))))

    def size(self, dim: Dim) -> int:
        return self.shape(dim[0])[dim[1]]

    # ------------------------------------------------------------------ saying
    def tie(self, a: Dim, b: Dim, a_index: np.ndarray | None = None, b_index: np.ndarray | None = None) -> None:
        """Tie atom ``a_index[k]`` of ``a`` to atom ``b_index[k]`` of ``b`` for every k.

        Without index arrays, the dimensions must have equal size and are tied
        element by element (identity).
        """
        self.mentioned.update((a, b))
        if a_index is None and b_index is None:
            n_a, n_b = self.size(a), self.size(b)
            if n_a != n_b:
                raise RuleBarrier(f"{self.op_type} ties dimensions of different sizes ({n_a} vs {n_b})")
            a_index = b_index = np.arange(n_a)
        self._b.add_tie(a, b, np.asarray(a_index), np.asarray(b_index))

    def tie_all(self, dims: list[Dim]) -> None:
        """Tie several equal-sized dimensions element by element."""
        for other in dims[1:]:
            self.tie(dims[0], other)

    def block(self, dim: Dim, reason: str, soft: bool = False) -> None:
        """This dimension must keep every element (normalised over, reduced, ...).

        ``soft`` marks a block that only follows from a choice the analysis may revise
        (a reshape's non-pivot axis); it does not make other reshapes move their pivot.
        """
        self.mentioned.add(dim)
        self._b.add_block(dim, f"{self.op_type}: {reason}", soft)

    def spatial(self, dim: Dim) -> None:
        """An axis whose size the operator itself determines (a convolution's or a pool's
        spatial axes, a kernel's extent): it can never lose elements."""
        self.block(dim, "spatial axis")

    def free(self, dim: Dim) -> None:
        """This dimension is mentioned but imposes nothing here (a size-1 broadcast axis,
        an input axis a sum reduces over). Never use it for an axis whose size the
        operator fixes: that is :meth:`spatial`."""
        self.mentioned.add(dim)

    def control(self, first: int, last: int | None = None) -> None:
        """Inputs ``first..last`` are control values (shapes, scales, axes, pads).

        Their elements are never channels, even when computed from float constants.
        """
        last = len(self.node.input) - 1 if last is None else last
        for i in range(first, last + 1):
            if self.has_input(i):
                for axis in range(len(self.in_shape(i))):
                    self.block(self.inp(i, axis), "control input")

    def reads(self, i: int, axis: int) -> None:
        """Axis ``axis`` of input ``i`` is contracted here: every output reads it, even
        when the same channels also leave the node (a convolution whose input and output
        channels are one group, an RNN's recurrent weight columns). The oracle zeroes
        removed slices of such axes at this node."""
        self._b.internal_reads.add((self.index, i, axis))

    def statistic(self, i: int) -> None:
        """Input ``i`` is a statistic (BatchNorm running mean/var): sliced but not scored."""
        if self.has_input(i):
            self._b.statistics.add(self.node.input[i])

    def pivot(self, run: int, candidates: int) -> int:
        """Which of ``candidates`` axes of reshape run ``run`` carries the channels.

        Starts at 0; the analysis raises it when the chosen axis left nothing prunable.
        """
        self._b.pivot_counts[(self.index, run)] = candidates
        return min(self._b.pivots.get((self.index, run), 0), candidates - 1)

    def pivot_dim(self, run: int, dim: Dim) -> None:
        """Record the dimension chosen as pivot of run ``run`` (to judge the choice)."""
        self._b.pivot_dims[(self.index, run)] = dim

    def rewrite_input(self, i: int, fn: InputRewriter) -> None:
        """After pruning, constant input ``i`` becomes ``fn(view, old_value)``."""
        self._b.input_rewriters.append((self.index, i, fn))

    def rewrite_attribute(self, name: str, fn: AttributeRewriter) -> None:
        """After pruning, attribute ``name`` becomes ``fn(view)``."""
        self._b.attribute_rewriters.append((self.index, name, fn))


def _norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise RuleBarrier(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0
