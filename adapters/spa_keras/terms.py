"""Tensors that tf2onnx may write as initializers, expressed in terms of Keras weights.

A :class:`Term` is a tensor computed from one or more Keras weights: a plain copy of a
weight, or what tf2onnx constant-folds out of a BatchNormalization layer
(``gamma / sqrt(var + eps)`` and ``beta - mean * scale``). Each layer class contributes
its terms through :data:`TERM_BUILDERS`; every float weight also has a ``copy`` term.
An ONNX initializer is then described (see :mod:`spa_keras.mapping`) as a term laid out
by a permutation and a reshape, optionally times a per-channel vector term (a
BatchNormalization folded into the preceding convolution).

A term remembers which weights it reads and how each weight's axes sit in the term's
layout (``RefUse.spans``), so kept indices of the term can be carried to the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class WeightRef:
    """One Keras weight: the layer's key (its name; ``outer/inner`` when nested) and index."""

    layer: str
    index: int
    path: str


@dataclass(frozen=True)
class RefUse:
    """How a weight enters a term.

    ``spans[i]`` lists the term axes that weight axis ``i`` covers (flattened in C order);
    a copy term has ``spans=((0,), (1,), ...)``.
    """

    ref: WeightRef
    role: str
    spans: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Term:
    """A tensor in the layout of its first weight, computed by ``TERM_KINDS[kind]``."""

    kind: str
    shape: tuple[int, ...]
    uses: tuple[RefUse, ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    def evaluate(self, weights: Mapping[WeightRef, np.ndarray]) -> np.ndarray:
        """The term's value from ``weights`` (probe or real values); float64 when computed."""
        if self.kind == "copy":  # no arithmetic: keep the weight's own array (no copy)
            return np.asarray(weights[self.uses[0].ref]).reshape(self.shape)
        arrays = {u.role: np.asarray(weights[u.ref], dtype=np.float64) for u in self.uses}
        out = TERM_KINDS[self.kind](arrays, dict(self.attrs), self.shape)
        return np.asarray(out, dtype=np.float64).reshape(self.shape)

    @property
    def primary(self) -> WeightRef:
        return self.uses[0].ref


# ---------------------------------------------------------------- how each kind is computed
def _copy(a: dict[str, np.ndarray], attrs: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    return a["x"]


def _bn_scale(a: dict[str, np.ndarray], attrs: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    gamma = a.get("gamma", np.ones(shape))
    return gamma / np.sqrt(a["moving_variance"] + attrs["epsilon"])


def _bn_shift(a: dict[str, np.ndarray], attrs: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    beta = a.get("beta", np.zeros(shape))
    return beta - a["moving_mean"] * _bn_scale(a, attrs, shape)


def _sqrt(a: dict[str, np.ndarray], attrs: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    return np.sqrt(a["x"])


def _rsqrt(a: dict[str, np.ndarray], attrs: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    return 1.0 / np.sqrt(a["x"])


def _negate(a: dict[str, np.ndarray], attrs: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    return -a["x"]


TERM_KINDS: dict[str, Callable[[dict[str, np.ndarray], dict[str, Any], tuple[int, ...]], np.ndarray]] = {
    "copy": _copy,
    "bn_scale": _bn_scale,
    "bn_shift": _bn_shift,
    "sqrt": _sqrt,
    "rsqrt": _rsqrt,
    "negate": _negate,
}


# ---------------------------------------------------------------- terms each layer offers
@dataclass
class LayerWeights:
    """A layer's float weights, by their path relative to the layer (``kernel``, ``query/bias``)."""

    key: str
    layer: Any
    refs: dict[str, WeightRef] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _vector_use(ref: WeightRef, role: str) -> RefUse:
    return RefUse(ref, role, ((0,),))


def _copy_terms(lw: LayerWeights) -> list[Term]:
    terms = []
    for rel, ref in lw.refs.items():
        shape = lw.shapes[rel]
        spans = tuple((i,) for i in range(len(shape)))
        terms.append(Term("copy", shape, (RefUse(ref, "x", spans),), label=ref.path))
    return terms


def _batch_norm_terms(lw: LayerWeights) -> list[Term]:
    cfg = lw.layer.get_config()
    if "moving_variance" not in lw.refs or len(lw.shapes["moving_variance"]) != 1:
        return []
    shape = lw.shapes["moving_variance"]
    roles = ("gamma", "moving_variance")
    scale_uses = tuple(_vector_use(lw.refs[r], r) for r in roles if r in lw.refs)
    shift_uses = tuple(
        _vector_use(lw.refs[r], r) for r in ("beta", "moving_mean", "gamma", "moving_variance") if r in lw.refs
    )
    attrs = (("epsilon", float(cfg.get("epsilon", 1e-3))),)
    return [
        Term("bn_scale", shape, scale_uses, attrs, label=f"{lw.key}/scale"),
        Term("bn_shift", shape, shift_uses, attrs, label=f"{lw.key}/shift"),
    ]


def _normalization_terms(lw: LayerWeights) -> list[Term]:
    """``keras.layers.Normalization``: tf2onnx folds ``sqrt(variance)`` (or its inverse)."""
    if "variance" not in lw.refs:
        return []
    ref = lw.refs["variance"]
    shape = lw.shapes["variance"]
    use = (RefUse(ref, "x", tuple((i,) for i in range(len(shape)))),)
    terms = [
        Term("sqrt", shape, use, label=f"{lw.key}/std"),
        Term("rsqrt", shape, use, label=f"{lw.key}/inv_std"),
    ]
    if "mean" in lw.refs:
        mref = lw.refs["mean"]
        muse = (RefUse(mref, "x", tuple((i,) for i in range(len(shape)))),)
        terms.append(Term("negate", lw.shapes["mean"], muse, label=f"{lw.key}/neg_mean"))
    return terms


def _layer_norm_terms(lw: LayerWeights) -> list[Term]:
    """A negated beta shows up when tf2onnx rewrites ``x*g + (b - mean*g)``."""
    return [
        Term("negate", lw.shapes[r], (_vector_use(lw.refs[r], "x"),), label=f"{lw.key}/neg_{r}")
        for r in ("beta",)
        if r in lw.refs and len(lw.shapes[r]) == 1
    ]


def _negated_terms(lw: LayerWeights) -> list[Term]:
    """``-alpha`` of PReLU, which tf2onnx writes as ``relu(x) - alpha * relu(-x)``."""
    return [
        Term("negate", lw.shapes[rel], (RefUse(ref, "x", tuple((i,) for i in range(len(lw.shapes[rel])))),), label=f"-{ref.path}")
        for rel, ref in lw.refs.items()
    ]


def term_builders() -> dict[type, Callable[[LayerWeights], list[Term]]]:
    """Layer class -> extra terms (besides plain copies). Looked up along the MRO."""
    import keras

    return {
        keras.layers.BatchNormalization: _batch_norm_terms,
        keras.layers.Normalization: _normalization_terms,
        keras.layers.LayerNormalization: _layer_norm_terms,
        keras.layers.PReLU: _negated_terms,
    }


def layer_terms(lw: LayerWeights, builders: dict[type, Callable[[LayerWeights], list[Term]]]) -> list[Term]:
    """Every term a layer offers: copies of its weights plus its class's derived terms."""
    terms = _copy_terms(lw)
    for cls in type(lw.layer).__mro__:
        if cls in builders:
            terms.extend(builders[cls](lw))
            break
    return terms
