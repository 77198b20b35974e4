"""Probe values: find which pytree leaf, and which element of it, every ONNX initializer holds.

jax2onnx names initializers generically (``kernel_oih_0``, ``const_3``) and lays them out
its own way (HWIO conv kernels become OIHW, attention kernels ``(in, H, D)`` become
``(in, H*D)``). Matching real values would be ambiguous: at initialisation every
BatchNorm scale is all ones and every bias all zeros. So the adapter exports the model a
second time with *probe* values: every float32 element of every leaf gets its own float32
number, ``1.0`` plus its global index in units of the last place (bit pattern
``0x3F800000 + index``). Decoding an initializer of the probe export gives, element by
element, the leaf and the flat position it came from: transposes, reshapes and any other
re-indexing are recovered exactly, with no guessing from names or values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from spa_core.errors import FrameworkError

_BASE = np.uint32(0x3F800000)  # bit pattern of float32 1.0
_MAX_ELEMENTS = 0x7F800000 - 0x3F800000  # stay below +inf


@dataclass(frozen=True)
class LeafMap:
    """How one ONNX initializer is laid out from one native leaf.

    Attributes:
        path: the leaf's pytree path joined by ``/``.
        leaf_shape: the leaf's native shape.
        positions: for each element of the initializer, its flat index in the leaf
            (an int array with the initializer's shape).
        axes: for each ONNX axis, the native axis it is, or ``None`` when the ONNX axis
            merges or splits native axes (``(in, H, D) -> (in, H*D)``).
    """

    path: str
    leaf_shape: tuple[int, ...]
    positions: np.ndarray
    axes: tuple[int | None, ...]

    @property
    def transform(self) -> str:
        """A short note of the layout change, for :class:`spa_core.ParamBinding`."""
        if tuple(self.positions.shape) == self.leaf_shape and self.axes == tuple(
            range(len(self.leaf_shape))
        ):
            return ""
        if None in self.axes or len(self.axes) != len(self.leaf_shape):
            return "reshaped"
        return "transposed"


def probe_values(leaves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Give every float32 element of ``leaves`` a distinct probe value (see module doc).

    Leaves that are not float32 (integer counters, RNG keys) are returned unchanged and
    are never matched.

    :raises FrameworkError: for floating leaves of another precision (bfloat16,
        float16, float64), whose elements cannot all be told apart.
    """
    out: dict[str, np.ndarray] = {}
    offset = 0
    for path, value in leaves.items():
        arr = np.asarray(value)
        if arr.dtype != np.float32:
            if np.issubdtype(arr.dtype, np.floating) or str(arr.dtype) == "bfloat16":
                raise FrameworkError(
                    f"parameter {path} is {arr.dtype}; SPA maps float32 parameters only, "
                    "so cast the model's parameters to float32 before pruning"
                )
            out[path] = arr
            continue
        bits = _BASE + np.arange(offset, offset + arr.size, dtype=np.uint32)
        out[path] = bits.view(np.float32).reshape(arr.shape)
        offset += arr.size
    if offset > _MAX_ELEMENTS:
        raise FrameworkError(f"model has {offset} parameters; probe matching supports up to {_MAX_ELEMENTS}")
    return out


class ProbeDecoder:
    """Decode probe-valued initializers back to (leaf, element) positions."""

    def __init__(self, leaves: dict[str, np.ndarray]) -> None:
        self._paths: list[str] = []
        self._shapes: list[tuple[int, ...]] = []
        starts: list[int] = []
        offset = 0
        for path, value in leaves.items():
            arr = np.asarray(value)
            if arr.dtype != np.float32:
                continue
            self._paths.append(path)
            self._shapes.append(tuple(arr.shape))
            starts.append(offset)
            offset += arr.size
        self._starts = np.asarray(starts, dtype=np.int64)
        self._total = offset

    def decode(self, array: np.ndarray) -> LeafMap | None:
        """The :class:`LeafMap` of ``array`` or ``None`` when it is not one whole leaf.

        An initializer is matched when every element decodes into the same leaf and the
        elements cover that leaf exactly once. Exporter constants, values computed from
        several parameters, and partial copies of a leaf return ``None``.
        """
        if array.dtype != np.float32 or array.size == 0 or not len(self._starts):
            return None
        index = array.reshape(-1).view(np.uint32).astype(np.int64) - int(_BASE)
        if index.min() < 0 or index.max() >= self._total:
            return None
        leaf = int(np.searchsorted(self._starts, index[0], side="right") - 1)
        start = int(self._starts[leaf])
        shape = self._shapes[leaf]
        size = int(np.prod(shape, dtype=np.int64))
        local = index - start
        if array.size != size or local.min() < 0 or local.max() >= size:
            return None
        if len(np.unique(local)) != size:
            return None
        positions = local.reshape(array.shape)
        return LeafMap(self._paths[leaf], shape, positions, axis_binding(positions, shape))


def axis_binding(positions: np.ndarray, leaf_shape: tuple[int, ...]) -> tuple[int | None, ...]:
    """For each axis of ``positions``, the leaf axis it walks along, else ``None``.

    A plain transpose is tried first (it also binds size-1 axes); otherwise an ONNX axis
    is bound to leaf axis ``j`` when moving along it steps through leaf axis ``j`` one by
    one and leaves every other leaf coordinate unchanged.
    """
    ident = np.arange(positions.size, dtype=np.int64).reshape(leaf_shape) if leaf_shape else None
    if ident is not None and positions.ndim == len(leaf_shape) and positions.ndim <= 6:
        for perm in itertools.permutations(range(len(leaf_shape))):
            moved = ident.transpose(perm)
            if moved.shape == positions.shape and np.array_equal(moved, positions):
                return tuple(perm)
    coords = np.unravel_index(positions, leaf_shape) if leaf_shape else ()
    axes: list[int | None] = []
    for i, size in enumerate(positions.shape):
        found: int | None = None
        for j, dim in enumerate(leaf_shape):
            if dim != size or size == 1:
                continue
            ramp = np.arange(size).reshape([size if k == i else 1 for k in range(positions.ndim)])
            steps_j = np.array_equal(coords[j] - np.take(coords[j], [0], axis=i), ramp + 0 * coords[j])
            others_fixed = all(
                np.all(np.diff(coords[k], axis=i) == 0) for k in range(len(leaf_shape)) if k != j
            )
            if steps_j and others_fixed:
                found = j
                break
        axes.append(found)
    return tuple(axes)
