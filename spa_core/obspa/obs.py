"""Optimal Brain Surgeon over whole input blocks (Frantar & Alistarh, *Optimal Brain
Compression*, NeurIPS 2022, eqs. for removing a set of weights at once).

For a layer ``y = W x`` with input Hessian ``H = E[x xᵀ]``, removing the input columns ``Q``
(one channel: its kernel positions) and re-fitting the others costs

    E(Q) = 1/2 · tr( W[:, Q] ([H⁻¹]_QQ)⁻¹ W[:, Q]ᵀ )

and the optimal update of the remaining weights is

    dW = −W[:, Q] ([H⁻¹]_QQ)⁻¹ (H⁻¹)[Q, :].

After a removal, ``H⁻¹`` is downdated by the same Schur complement, so channels can be
removed greedily one block at a time. A channel that feeds several layers (a channel
group with several consumers) costs the sum of its errors over them. Output rows can be
weighted (the error measured after a following BatchNorm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dgemm


def damped_cholesky(h: np.ndarray, damp: float) -> tuple[tuple | None, float]:
    """The Cholesky factor of ``H + λI`` and ``λ``, from ``λ = damp · mean(diag H)``
    (dampening keeps it well conditioned), raised tenfold up to five times while the
    factorisation fails; ``(None, λ)`` when it never succeeds."""
    lam = damp * float(np.mean(np.diag(h))) if len(h) else 0.0
    lam = lam if lam > 0 else 1e-8
    for _ in range(6):
        try:
            return cho_factor(h + lam * np.eye(len(h))), lam
        except np.linalg.LinAlgError:
            lam *= 10
    return None, lam


def damped_inverse(h: np.ndarray, damp: float) -> np.ndarray:
    """``(H + λI)⁻¹`` with ``λ`` from :func:`damped_cholesky` (the pseudo-inverse of ``H``
    when no dampening makes it positive definite)."""
    factor, _ = damped_cholesky(h, damp)
    if factor is None:
        return np.linalg.pinv(h)
    inv = cho_solve(factor, np.eye(len(h)))
    return (inv + inv.T) / 2


def block_errors(w: np.ndarray, hinv: np.ndarray, blocks: np.ndarray, row_scale: np.ndarray | None = None) -> np.ndarray:
    """OBS error of removing each block (row of ``blocks``: column indices) on its own."""
    if blocks.shape[1] == 1:
        cols = blocks[:, 0]
        wsq = w[:, cols] ** 2
        if row_scale is not None:
            wsq = wsq * row_scale[:, None]
        return 0.5 * wsq.sum(axis=0) / np.maximum(np.diag(hinv)[cols], 1e-300)
    hb = hinv[blocks[:, :, None], blocks[:, None, :]]
    wb = np.transpose(w[:, blocks], (1, 0, 2))  # (n, out, b)
    if row_scale is not None:
        wb = wb * np.sqrt(row_scale)[None, :, None]
    try:
        sol = np.linalg.solve(hb, np.transpose(wb, (0, 2, 1)))  # (n, b, out)
    except np.linalg.LinAlgError:
        sol = np.matmul(np.linalg.pinv(hb), np.transpose(wb, (0, 2, 1)))
    return 0.5 * np.einsum("nob,nbo->n", wb, sol)


def obs_update(w: np.ndarray, hinv: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``dW = −W[:, Q] ([H⁻¹]_QQ)⁻¹ (H⁻¹)[Q, :]``: the compensation for removing columns ``q``."""
    hqq = hinv[np.ix_(q, q)]
    coef = np.linalg.solve(hqq, w[:, q].T).T  # W_Q (H⁻¹_QQ)⁻¹
    return -coef @ hinv[q, :]


def downdate(hinv: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The inverse Hessian of the remaining columns (rows/columns ``q`` become zero)."""
    hqq = hinv[np.ix_(q, q)]
    return hinv - hinv[:, q] @ np.linalg.solve(hqq, hinv[q, :])


def compensate(w: np.ndarray, h: np.ndarray, removed: np.ndarray, damp: float) -> np.ndarray:
    """``W`` with columns ``removed`` taken out and the rest re-fitted (OBS update for the set).

    Equal to the least-squares optimum ``argmin_{W'} tr((W − W') H (W − W')ᵀ)`` subject to
    ``W'[:, removed] = 0`` for the dampened ``H``.
    """
    out = w.copy()
    if len(removed) == 0:
        return out
    hinv = damped_inverse(h, damp)
    out += obs_update(w, hinv, removed)
    out[:, removed] = 0.0
    return out


def _subtract_product(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``c -= a @ b`` in place for a C-contiguous float64 ``c`` (one BLAS call, no temporary)."""
    if c.dtype != np.float64 or not c.flags.c_contiguous:
        c -= a @ b
        return
    # c is the Fortran-ordered view of cᵀ: cᵀ ← cᵀ − bᵀ aᵀ
    out = dgemm(alpha=-1.0, a=b, b=a, beta=1.0, c=c.T, overwrite_c=True, trans_a=1, trans_b=1)
    if not np.shares_memory(out, c):
        c[...] = out.T


@dataclass
class ObsLayer:
    """One consumer during greedy removal: current weights and inverse Hessian.

    ``blocks`` are the columns of the group's channels (``(n, b)``, original indexing);
    columns are dropped from ``w`` and ``hinv`` from time to time (compaction) so that
    later steps get cheaper.
    """

    w: np.ndarray
    hinv: np.ndarray
    blocks: np.ndarray
    row_scale: np.ndarray | None
    energy: float

    def __post_init__(self) -> None:
        self.pos = np.arange(self.w.shape[1])  # original column -> current position (-1: gone)
        self.gone = 0

    def errors(self, alive: np.ndarray) -> np.ndarray:
        err = np.full(len(self.blocks), np.inf)
        err[alive] = block_errors(self.w, self.hinv, self.pos[self.blocks[alive]], self.row_scale)
        return err

    def remove(self, channel: int) -> None:
        """Remove one channel: OBS update of ``w`` and downdate of ``hinv``, in place."""
        q = self.pos[self.blocks[channel]]
        rows = self.hinv[q, :]  # (H⁻¹)[Q, :] (= (H⁻¹)[:, Q]ᵀ, the matrix is symmetric)
        hqq = rows[:, q]
        coef = np.linalg.solve(hqq, self.w[:, q].T).T  # W_Q (H⁻¹_QQ)⁻¹
        _subtract_product(self.w, coef, rows)
        _subtract_product(self.hinv, rows.T, np.linalg.solve(hqq, rows))
        self.w[:, q] = 0.0
        self.hinv[q, :] = 0.0
        self.hinv[:, q] = 0.0
        self.pos[self.blocks[channel]] = -1
        self.gone += len(q)
        if self.gone >= max(16, self.w.shape[1] // 4):
            self._compact()

    def _compact(self) -> None:
        alive_cols = np.nonzero(self.pos >= 0)[0]
        current = self.pos[alive_cols]
        self.w = np.ascontiguousarray(self.w[:, current])
        self.hinv = np.ascontiguousarray(self.hinv[np.ix_(current, current)])
        self.pos[alive_cols] = np.arange(len(alive_cols))
        self.gone = 0


def greedy_order(
    layers: list[ObsLayer], n: int, depth: int, on_step: Callable[[int], object] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove ``depth`` of ``n`` channels one at a time, always the cheapest.

    :return: removal order ``(depth,)``, the error of each removal per layer
        ``(depth, layers)`` and each channel's error at the last step it was alive.
    """
    alive = np.ones(n, dtype=bool)
    order = np.zeros(depth, dtype=np.int64)
    costs = np.zeros((depth, len(layers)))
    last = np.zeros(n)
    for step in range(depth):
        per_layer = np.stack([layer.errors(alive) for layer in layers])
        total = per_layer.sum(axis=0)
        last[alive] = total[alive]
        q = int(np.argmin(total))
        order[step], costs[step] = q, per_layer[:, q]
        alive[q] = False
        for layer in layers:
            layer.remove(q)
        if on_step is not None:
            on_step(1)
    if depth < n:
        per_layer = np.stack([layer.errors(alive) for layer in layers])
        last[alive] = per_layer.sum(axis=0)[alive]
    return order, costs, last
