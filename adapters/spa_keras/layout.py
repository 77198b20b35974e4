"""Index bookkeeping between a native weight layout and an ONNX initializer layout.

tf2onnx writes a Keras weight ``W`` as ``reshape(transpose(W, perm), onnx_shape)``: an
HWIO kernel becomes OIHW (``perm=(3, 2, 0, 1)``), a depthwise kernel ``(kh, kw, C, M)``
becomes ``(C*M, 1, kh, kw)``, a BatchNormalization vector ``(C,)`` becomes ``(1, C, 1, 1)``.
This module finds such a ``(perm, reshape)`` by value and translates kept indices per
ONNX axis back to kept indices per native axis. Reshapes are split into independent runs
of axes (as numpy does), so the index arithmetic only ever touches small arrays even for
a 100-million-element Dense kernel.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from spa_core.errors import FrameworkError

Kept = dict[int, list[int]]


def axis_runs(src: Sequence[int], dst: Sequence[int]) -> list[tuple[list[int], list[int]]] | None:
    """Split a reshape ``src -> dst`` into runs of axes with equal element counts.

    Returns ``[(src_axes, dst_axes), ...]`` covering every axis once, or ``None`` when the
    two shapes have different sizes. Size-1 axes may form a run with no partner.
    """
    if int(np.prod(src, dtype=np.int64)) != int(np.prod(dst, dtype=np.int64)):
        return None
    runs: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(src) or j < len(dst):
        a: list[int] = []
        b: list[int] = []
        pa = pb = 1
        if i < len(src):
            a.append(i)
            pa *= src[i]
            i += 1
        if j < len(dst):
            b.append(j)
            pb *= dst[j]
            j += 1
        while pa != pb:
            if pa < pb and i < len(src):
                a.append(i)
                pa *= src[i]
                i += 1
            elif pb < pa and j < len(dst):
                b.append(j)
                pb *= dst[j]
                j += 1
            else:  # a zero-sized dimension; shapes with zeros never occur in weights
                return None
        runs.append((a, b))
    return runs


def distinct_perms(shape: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """All axis permutations of ``shape`` that differ in the order of non-1 axes."""
    seen: set[tuple[int, ...]] = set()
    for perm in itertools.permutations(range(len(shape))):
        key = tuple(p for p in perm if shape[p] != 1)
        if key in seen:
            continue
        seen.add(key)
        yield perm


def to_onnx_layout(value: np.ndarray, perm: Sequence[int], onnx_shape: Sequence[int]) -> np.ndarray:
    """``reshape(transpose(value, perm), onnx_shape)``."""
    return np.ascontiguousarray(np.transpose(value, perm)).reshape(tuple(onnx_shape))


def from_onnx_layout(value: np.ndarray, perm: Sequence[int], native_shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`to_onnx_layout`."""
    permuted = tuple(native_shape[p] for p in perm)
    return np.transpose(value.reshape(permuted), np.argsort(perm))


def find_layout(
    native: np.ndarray, target: np.ndarray, rtol: float = 1e-5, atol: float = 1e-7
) -> tuple[int, ...] | None:
    """The permutation ``perm`` with ``to_onnx_layout(native, perm, target.shape) == target``."""
    if native.size != target.size:
        return None
    for perm in distinct_perms(native.shape):
        permuted = [native.shape[p] for p in perm]
        if axis_runs(permuted, target.shape) is None:
            continue
        if np.allclose(to_onnx_layout(native, perm, target.shape), target, rtol=rtol, atol=atol):
            return tuple(perm)
    return None


def onnx_axes_to_native(
    perm: Sequence[int], native_shape: Sequence[int], onnx_shape: Sequence[int]
) -> tuple[int | None, ...]:
    """For each ONNX axis, the native axis it is, or ``None`` (merged, split or size 1)."""
    permuted = [native_shape[p] for p in perm]
    axes: list[int | None] = [None] * len(onnx_shape)
    for src, dst in axis_runs(permuted, onnx_shape) or []:
        big_src = [a for a in src if permuted[a] != 1]
        big_dst = [b for b in dst if onnx_shape[b] != 1]
        if len(big_src) == 1 and len(big_dst) == 1:
            axes[big_dst[0]] = perm[big_src[0]]
        elif len(src) == 1 and len(dst) == 1:
            axes[dst[0]] = perm[src[0]]
    return tuple(axes)


def kept_to_native(
    kept: Mapping[int, Sequence[int]],
    perm: Sequence[int],
    native_shape: Sequence[int],
    onnx_shape: Sequence[int],
    what: str,
) -> Kept:
    """Translate kept indices per ONNX axis into kept indices per native axis.

    Raises :class:`FrameworkError` when the kept ONNX indices of a merged axis do not form
    a product of per-native-axis index sets (a depthwise kernel that keeps a different
    multiplier for each channel, say), which no Keras layer can express.
    """
    permuted = [native_shape[p] for p in perm]
    runs = axis_runs(permuted, onnx_shape)
    if runs is None:
        raise FrameworkError(f"{what}: ONNX shape {list(onnx_shape)} does not match {list(native_shape)}")
    result: Kept = {}
    for src, dst in runs:
        if not any(b in kept for b in dst) or not src:
            continue
        src_dims = [permuted[a] for a in src]
        dst_dims = [onnx_shape[b] for b in dst]
        index = np.arange(int(np.prod(src_dims)), dtype=np.int64).reshape(dst_dims)
        selector = tuple(
            np.asarray(kept[b], dtype=np.int64) if b in kept else np.arange(onnx_shape[b]) for b in dst
        )
        chosen = index[np.ix_(*selector)].ravel()
        coords = np.unravel_index(chosen, src_dims)
        per_axis = [np.unique(c) for c in coords]
        if int(np.prod([len(c) for c in per_axis])) != len(np.unique(chosen)):
            raise FrameworkError(
                f"{what}: the kept channels of a merged axis cannot be expressed per native axis"
            )
        for a, idx in zip(src, per_axis):
            if len(idx) != permuted[a]:
                result[perm[a]] = idx.tolist()
    return result


def span_kept(kept: Mapping[int, Sequence[int]], span: Sequence[int], shape: Sequence[int]) -> list[int] | None:
    """Kept flat indices of axes ``span`` of ``shape`` flattened (C order); None if all kept."""
    if not any(a in kept for a in span):
        return None
    ranges = [np.asarray(kept[a]) if a in kept else np.arange(shape[a]) for a in span]
    grids = np.meshgrid(*ranges, indexing="ij")
    flat = np.ravel_multi_index([g.ravel() for g in grids], [shape[a] for a in span])
    return np.sort(flat).tolist()
