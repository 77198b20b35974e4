"""Which Keras weights each ONNX initializer came from, found by value.

The export runs tf2onnx on the model with *probe* weights: every float weight is filled
with distinct random values in ``[0.5, 1.5)``. No two weights then share a value, no bias
is zero and no BatchNormalization is an identity, so tf2onnx cannot merge, drop or
deduplicate weight-derived constants, and each initializer is recognised unambiguously:

* as a term (a weight, or a BatchNormalization scale/shift, see :mod:`spa_keras.terms`)
  laid out by a permutation and a reshape: the multiset of values is the same, then the
  layout is searched;
* or as a kernel term times a per-channel vector term (BatchNormalization folded into
  the convolution or Dense before it): the ratio to the kernel is constant along all
  axes but the output channel one, and equals a vector term.

The resulting :class:`InitializerSource` evaluates the initializer from any weights
(the real ones are written back into the exported model) and carries kept ONNX indices
back to kept indices of every weight involved.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spa_core.types import ParamBinding

from . import layout
from .terms import Term, WeightRef

NativeKept = dict[WeightRef, dict[int, list[int]]]
_RTOL = 1e-4
_ATOL = 1e-5


@dataclass(frozen=True)
class InitializerSource:
    """An ONNX initializer as ``reshape(transpose(term * scale, perm), onnx_shape)``.

    ``scale`` (optional) is a vector term broadcast along ``scale_axes`` of ``term``
    (flattened in C order): a folded BatchNormalization.
    """

    term: Term
    perm: tuple[int, ...]
    onnx_shape: tuple[int, ...]
    scale: Term | None = None
    scale_axes: tuple[int, ...] = ()

    def evaluate(self, weights: Mapping[WeightRef, np.ndarray]) -> np.ndarray:
        """The initializer's value (float32, ONNX layout) from ``weights``."""
        value = self.term.evaluate(weights)
        if self.scale is not None:
            shape = [self.term.shape[a] if a in self.scale_axes else 1 for a in range(len(self.term.shape))]
            value = value * self.scale.evaluate(weights).reshape(shape)
        return layout.to_onnx_layout(value, self.perm, self.onnx_shape).astype(np.float32)

    def native_kept(self, kept: Mapping[int, Sequence[int]], name: str) -> NativeKept:
        """Kept indices per axis of every weight, from kept indices per ONNX axis."""
        term_kept = layout.kept_to_native(kept, self.perm, self.term.shape, self.onnx_shape, name)
        out: NativeKept = {}
        _uses_kept(self.term, term_kept, out)
        if self.scale is not None:
            flat = layout.span_kept(term_kept, self.scale_axes, self.term.shape)
            if flat is not None:
                _uses_kept(self.scale, {0: flat}, out)
        return out

    def binding(self) -> ParamBinding:
        """The engine-facing binding: the primary weight and its axis for each ONNX axis."""
        use = self.term.uses[0]
        term_axes = layout.onnx_axes_to_native(self.perm, self.term.shape, self.onnx_shape)
        weight_axis = {span[0]: i for i, span in enumerate(use.spans) if len(span) == 1}
        axes = tuple(None if a is None else weight_axis.get(a) for a in term_axes)
        transform = "" if self.term.kind == "copy" else self.term.kind
        if self.scale is not None:
            transform = f"bn_folded:{self.scale.primary.layer}"
        return ParamBinding(use.ref.path, axes, transform)

    @property
    def label(self) -> str:
        return self.term.label if self.scale is None else f"{self.term.label}*{self.scale.primary.layer}"


def _uses_kept(term: Term, term_kept: Mapping[int, Sequence[int]], out: NativeKept) -> None:
    for use in term.uses:
        for axis, span in enumerate(use.spans):
            flat = layout.span_kept(term_kept, span, term.shape)
            if flat is not None:
                out.setdefault(use.ref, {})[axis] = flat


# ---------------------------------------------------------------- matching by value
def _fingerprint(value: np.ndarray) -> np.ndarray:
    """Layout-independent summary (sum, sum of squares, min, max): a cheap pre-filter."""
    v = value.astype(np.float64, copy=False).ravel()
    return np.array([v.sum(), np.dot(v, v), v.min(), v.max()])


_SUFFIX = re.compile(r"(_\d+)?(:\d+)?$")


def name_hints(names: Iterable[str]) -> set[str]:
    """Layer-name-like tokens of TF op names (``functional_1/conv1_1/Conv2D`` -> conv1...)."""
    hints: set[str] = set()
    for name in names:
        for token in name.split("/"):
            hints.add(token)
            hints.add(_SUFFIX.sub("", token))
    return hints


class Matcher:
    """Recognises initializers among the terms of a model, evaluated on probe weights."""

    def __init__(self, terms: Sequence[Term], probe: Mapping[WeightRef, np.ndarray]):
        self._values: dict[int, np.ndarray] = {}
        self._by_size: dict[int, list[tuple[Term, np.ndarray]]] = defaultdict(list)
        self._vectors: dict[int, list[Term]] = defaultdict(list)
        self._terms = list(terms)
        for i, term in enumerate(self._terms):
            value = term.evaluate(probe).astype(np.float32, copy=False)
            self._values[i] = value
            self._by_size[value.size].append((term, _fingerprint(value)))
            if sum(d != 1 for d in term.shape) <= 1:
                self._vectors[value.size].append(term)
        self._index = {id(t): i for i, t in enumerate(self._terms)}

    def value(self, term: Term) -> np.ndarray:
        return self._values[self._index[id(term)]]

    def match(self, value: np.ndarray, hints: set[str] = frozenset()) -> InitializerSource | None:
        """The source of an initializer value, or ``None`` for exporter constants."""
        value = np.asarray(value, dtype=np.float32)
        if value.size == 0:
            return None
        return self._match_copy(value, hints) or self._match_scaled(value, hints)

    def _ordered(self, candidates: list, hints: set[str], term_of=lambda c: c[0]) -> list:
        def rank(c) -> int:
            return 0 if term_of(c).primary.layer.split("/")[-1] in hints else 1

        return sorted(candidates, key=rank)

    def _match_copy(self, value: np.ndarray, hints: set[str]) -> InitializerSource | None:
        print_ = _fingerprint(value)
        for term, fingerprint in self._ordered(self._by_size.get(value.size, []), hints):
            if not np.allclose(print_, fingerprint, rtol=_RTOL, atol=_ATOL * value.size):
                continue
            perm = layout.find_layout(self.value(term), value, _RTOL, _ATOL)
            if perm is not None:
                return InitializerSource(term, perm, tuple(value.shape))
        return None

    def _match_scaled(self, value: np.ndarray, hints: set[str]) -> InitializerSource | None:
        kernels = [c for c in self._by_size.get(value.size, []) if c[0].kind == "copy" and len(c[0].shape) >= 2]
        for term, _ in self._ordered(kernels, hints):
            base = self.value(term)
            for perm in layout.distinct_perms(term.shape):
                permuted = [term.shape[p] for p in perm]
                if layout.axis_runs(permuted, value.shape) is None:
                    continue
                ratio = layout.from_onnx_layout(value, perm, term.shape).astype(np.float64) / base
                found = self._scale_for(ratio, term.shape)
                if found is not None:
                    scale, axes = found
                    return InitializerSource(term, tuple(perm), tuple(value.shape), scale, axes)
        return None

    def _scale_for(self, ratio: np.ndarray, shape: tuple[int, ...]) -> tuple[Term, tuple[int, ...]] | None:
        rank = len(shape)
        spans = [(a,) for a in range(rank)] + [(a, a + 1) for a in range(rank - 1)]
        for span in spans:
            index = tuple(slice(None) if a in span else slice(0, 1) for a in range(rank))
            vector = ratio[index]
            if not np.allclose(ratio, np.broadcast_to(vector, ratio.shape), rtol=_RTOL, atol=_ATOL):
                continue
            flat = vector.ravel()
            for term in self._vectors.get(flat.size, []):
                if np.allclose(self.value(term).ravel(), flat, rtol=_RTOL, atol=_ATOL):
                    return term, span
        return None
