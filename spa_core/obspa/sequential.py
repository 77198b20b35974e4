"""Sequential compensation: every consumer re-fitted on the inputs of the already pruned model.

The independent compensation (:func:`spa_core.obspa.prune.compensated_weights`) fits each
consumer's kept weights to reproduce its own dense output *from its dense input*. Deeper
layers then see inputs that earlier removals have already changed, and nothing makes up for
that. Here consumers are re-fitted in graph order, each on the inputs that the model
pruned and compensated so far produces (``X̂``), with the dense model's output as the
target (``W X``) — the least-squares problem of OBS with an input that is no longer the
dense one (as in the sequential mode of SparseGPT/OBC, with the dense target instead of
the layer's own dense output on the pruned input)::

    min over Ŵ_K   Σ ‖W x − Ŵ_K x̂_K‖² + λ ‖Ŵ_K − W_K‖²
    Ŵ_K = (W Σ x x̂_Kᵀ + λ W_K) (Σ x̂_K x̂_Kᵀ + λ I)⁻¹

``K`` are the kept input columns (and the constant column when the consumer has a bias
carrier, so that mean shifts are absorbed). When no earlier layer changed (``x̂ = x``),
this is the OBS compensation of :func:`spa_core.obspa.obs.compensate` up to the ridge
term. Consumers with nothing removed are re-fitted as well: their inputs changed.

Cost: two runs of the model per batch and per distinct consumer input: the dense model, and
the current one (an onnxruntime session whose consumer weights are graph inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper
from scipy.linalg import cho_solve

from ..analysis import Analysis
from .consumers import Consumer
from .hessian import Runner, batches, columns, with_ones
from .obs import damped_cholesky


def weights_as_inputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """``model`` with the initializers ``names`` turned into graph inputs (fed per run)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    wanted = set(names)
    kept = [t for t in out.graph.initializer if t.name not in wanted]
    moved = {t.name: t for t in out.graph.initializer if t.name in wanted}
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    for name in names:
        t = moved[name]
        out.graph.input.append(helper.make_tensor_value_info(name, t.data_type, list(t.dims)))
    return out


def _ridge_fit(w: np.ndarray, cross: np.ndarray, gram: np.ndarray, keep: np.ndarray, damp: float) -> np.ndarray:
    """``Ŵ`` (zeros outside ``keep``) minimising ``‖W x − Ŵ x̂‖² + λ‖Ŵ_K − W_K‖²`` from
    ``cross = E[x x̂ᵀ]`` and ``gram = E[x̂ x̂ᵀ]``."""
    g = gram[np.ix_(keep, keep)]
    factor, lam = damped_cholesky(g, damp)
    rhs = w @ cross[:, keep] + lam * w[:, keep]
    fitted = cho_solve(factor, rhs.T).T if factor is not None else rhs @ np.linalg.pinv(g + lam * np.eye(len(keep)))
    out = np.zeros_like(w)
    out[:, keep] = fitted
    return out


def sequential_weights(
    run_model: onnx.ModelProto, analysis: Analysis, consumers: list[Consumer], feeds: Mapping[str, np.ndarray],
    kept: Mapping[int, np.ndarray], damp: float, batch: int, on_step: Callable[[int], object] | None = None,
) -> dict[str, np.ndarray]:
    """Full-size weights (and bias carriers) of every consumer after sequential compensation.

    ``run_model`` is the model the inputs are propagated through (its BatchNorm statistics
    may be frozen from synthetic inputs); the returned carriers start from the original
    model's values and get the same shifts.
    """
    original = analysis.graph.initializers
    names = list(dict.fromkeys([c.weight for c in consumers] + [c.bias[0] for c in consumers if c.bias]))
    wanted = set(names)
    run_values = {t.name: numpy_helper.to_array(t) for t in run_model.graph.initializer if t.name in wanted}
    current = {n: run_values[n].copy() for n in names}
    out: dict[str, np.ndarray] = {}
    activations = sorted({c.activation for c in consumers})
    dense_runner = Runner(run_model, activations)  # constant weights: onnxruntime pre-packs and fuses them
    runner = Runner(weights_as_inputs(run_model, names), activations)
    by_activation: dict[str, list[Consumer]] = {}
    for c in consumers:  # graph order: every consumer's upstream consumers come first
        by_activation.setdefault(c.activation, []).append(c)
    chunks = list(batches(feeds, batch))
    for activation, readers in by_activation.items():
        sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        count = dict.fromkeys(range(len(readers)), 0)
        for feed in chunks:
            x = dense_runner(feed, [activation])[activation]
            x_hat = runner({**feed, **current}, [activation])[activation]
            for k, c in enumerate(readers):
                a, b = with_ones(columns(c, x)), with_ones(columns(c, x_hat))
                cross, gram = (a.T @ b).astype(np.float64), (b.T @ b).astype(np.float64)  # sgemm, summed in float64
                prev = sums.get(k)
                sums[k] = (cross, gram) if prev is None else (prev[0] + cross, prev[1] + gram)
                count[k] += len(a)
        for k, c in enumerate(readers):
            cross, gram = (s / max(count[k], 1) for s in sums[k])
            m = c.matrix(run_values[c.weight]).astype(np.float64)
            keep = np.setdiff1d(np.arange(c.d), c.removed_columns(kept))
            if c.bias is not None:
                m = np.concatenate([m, np.zeros((len(m), 1))], axis=1)
                keep = np.append(keep, c.d)
            else:
                cross, gram = cross[:-1, :-1], gram[:-1, :-1]
            new = _ridge_fit(m, cross, gram, keep, damp)
            c.put(current[c.weight], new[:, : c.d].astype(current[c.weight].dtype))
            out[c.weight] = current[c.weight]
            if c.bias is not None:
                name, factor = c.bias
                shift = factor * new[:, -1]
                current[name].reshape(-1)[c.rows] += shift.astype(current[name].dtype)
                carrier = out.setdefault(name, original[name].copy())
                carrier.reshape(-1)[c.rows] += shift.astype(carrier.dtype)
        if on_step is not None:
            on_step(len(readers))
    return out

