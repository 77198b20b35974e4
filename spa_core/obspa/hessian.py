"""Layer-input Hessians ``H = X Xᵀ / n`` of every consumer, from onnxruntime runs.

The model is run on batches of inputs with the consumers' input activations exposed as
extra outputs; each activation is turned into the consumer's input columns (for Conv, the
im2col patches: one row per output position, ``channels x kernel`` columns, in the order of
the flattened weight) and accumulated. A constant column of ones is accumulated as well
(the last row/column), so that a consumer with a bias carrier can compensate output shifts.

Consumers that read the same columns (same activation, same convolution geometry, same
channel slice) share one Hessian.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view

from ..runtime import session
from .consumers import Consumer


def _conv_geometry(conv: dict, spatial: tuple[int, ...]) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Kernel, strides, dilations, pads-begin, pads-end of a Conv (``auto_pad`` resolved)."""
    kernel = [int(k) for k in conv["kernel_shape"]]
    nd = len(kernel)
    strides = [int(s) for s in (conv.get("strides") or [1] * nd)]
    dil = [int(d) for d in (conv.get("dilations") or [1] * nd)]
    auto = conv.get("auto_pad") or b"NOTSET"
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for s, k, st, d in zip(spatial, kernel, strides, dil):
            out = -(-s // st)
            total = max(0, (out - 1) * st + (k - 1) * d + 1 - s)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
    elif auto == "VALID":
        begin, end = [0] * nd, [0] * nd
    else:
        pads = [int(p) for p in (conv.get("pads") or [0] * (2 * nd))]
        begin, end = pads[:nd], pads[nd:]
    return kernel, strides, dil, begin, end


def im2col(x: np.ndarray, conv: dict) -> np.ndarray:
    """Patches of an N-D convolution input ``(N, C, *S)`` as ``(N * positions, C * kernel)``."""
    spatial = x.shape[2:]
    kernel, strides, dil, begin, end = _conv_geometry(conv, spatial)
    nd = len(kernel)
    if all(k == 1 for k in kernel) and not any(begin) and not any(end):
        view = x[(slice(None), slice(None), *[slice(None, None, s) for s in strides])]
        return np.moveaxis(view, 1, -1).reshape(-1, x.shape[1])
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    win = sliding_window_view(xp, extent, axis=tuple(range(2, 2 + nd)))
    win = win[(slice(None), slice(None), *[slice(None, None, s) for s in strides], *[slice(None, None, d) for d in dil])]
    # (N, C, *out, *kernel) -> (N, *out, C, *kernel)
    order = [0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd)]
    cols = np.transpose(win, order)
    n_pos = int(np.prod(cols.shape[1 : 1 + nd], dtype=np.int64))
    return cols.reshape(x.shape[0] * n_pos, -1)


def columns(consumer: Consumer, activation: np.ndarray) -> np.ndarray:
    """The consumer's input columns ``(rows, d)`` from its input activation."""
    if consumer.op == "Conv":
        return im2col(activation[:, consumer.in_channels], consumer.conv)
    return activation.reshape(-1, activation.shape[-1])


def with_ones(cols: np.ndarray) -> np.ndarray:
    """``cols`` (float32) with a constant column of ones appended (the bias direction)."""
    cols = cols.astype(np.float32, copy=False)
    return np.concatenate([cols, np.ones((len(cols), 1), dtype=np.float32)], axis=1)


def hessian_key(consumer: Consumer) -> tuple:
    conv = consumer.conv or {}
    geometry = tuple((k, str(v)) for k, v in sorted(conv.items()))
    return (consumer.activation, consumer.op == "Conv", geometry,
            consumer.in_channels.start, consumer.in_channels.stop)


class HessianAccumulator:
    """Sums of ``[x, 1][x, 1]ᵀ`` over input rows, one per distinct consumer input."""

    def __init__(self, consumers: Iterable[Consumer]):
        self.key_of: dict[int, tuple] = {}
        self.first: dict[tuple, Consumer] = {}
        for i, c in enumerate(consumers):
            key = hessian_key(c)
            self.key_of[i] = key
            self.first.setdefault(key, c)
        self.sums: dict[tuple, np.ndarray] = {}
        self.counts: dict[tuple, int] = dict.fromkeys(self.first, 0)
        self.source = "calibration"  # where the inputs came from (recorded in the plan)

    @property
    def activations(self) -> list[str]:
        return sorted({c.activation for c in self.first.values()})

    def add(self, values: Mapping[str, np.ndarray]) -> None:
        for key, c in self.first.items():
            cols = with_ones(columns(c, values[c.activation]))
            gram = (cols.T @ cols).astype(np.float64)
            if key in self.sums:
                self.sums[key] += gram
            else:
                self.sums[key] = gram
            self.counts[key] += len(cols)

    def hessian(self, index: int) -> np.ndarray:
        """``[X; 1][X; 1]ᵀ / n`` of consumer ``index`` (last row/column: the constant)."""
        key = self.key_of[index]
        return self.sums[key] / max(self.counts[key], 1)


class Runner:
    """One onnxruntime session that returns the requested intermediate values."""

    def __init__(self, model: onnx.ModelProto, outputs: Iterable[str], threads: int | None = None):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        present = {o.name for o in m.graph.output}
        self.names = list(dict.fromkeys(outputs))
        for name in self.names:
            if name not in present:
                m.graph.output.append(onnx.ValueInfoProto(name=name))
        del m.graph.value_info[:]
        self.sess = session(m, threads)

    def __call__(self, feeds: Mapping[str, np.ndarray], names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The values ``names`` (default: all requested at construction) on ``feeds``."""
        names = self.names if names is None else names
        return dict(zip(names, self.sess.run(names, dict(feeds))))


def batches(feeds: Mapping[str, np.ndarray], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive slices of ``size`` samples (axis 0) of every input; a short tail is dropped
    unless it is the only batch (the runner's model has a static batch size)."""
    n = len(next(iter(feeds.values())))
    stops = list(range(size, n + 1, size)) or [n]
    for stop in stops:
        yield {k: v[stop - size if n >= size else 0 : stop] for k, v in feeds.items()}
