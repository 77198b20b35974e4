# ruff: noqa: E402  (BLAS/OpenMP thread counts are set before numpy and torch are imported)
"""Pruning before training (issue #7): prune an untrained Fashion-MNIST CNN, then train it.

A small CNN is built with random weights, scored on a few calibration batches by
``snip``, ``grasp``, ``crop`` (gradient criteria designed for untrained weights), ``l1``
(magnitude) and ``random``, and pruned with :func:`spa_core.workflows.prune_at_init` to
a parameter budget (50 %, 70 % or 90 % of the parameters removed). Every network — the
dense one too — is then trained for the same number of epochs from its initial weights,
and its test accuracy is reported.

Channels are ranked globally by default (``--allocation global``): each criterion's
normalised scores decide how wide every layer stays, as SNIP and GraSP do, and the
parameter budget is met by bisection. ``--allocation local`` removes the same fraction
of every group instead (then only *which* channels go differs between criteria).

    python reproductions/before_training.py            # full: ~20-30 min on 2 cores
    python reproductions/before_training.py --quick    # < 2 min, a smoke run
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

# One BLAS/OpenMP thread: on the shared 2-core machines, several threads spinning against other
# jobs made a 577x577 Cholesky 20x slower. Set before numpy and torch are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproductions.common import (
    Row,
    batches,
    evaluate,
    fashion_mnist,
    set_threads,
    train,
    write_results,
)
from spa_core.workflows import prune_at_init

CRITERIA = ("snip", "grasp", "crop", "l1", "random")
SPARSITIES = (0.5, 0.7, 0.9)
COLUMNS = ("criterion", "sparsity", "params", "params_kept", "macs_kept", "accuracy", "seconds")


def cnn(width: int = 16, classes: int = 10) -> nn.Sequential:
    """A VGG-like CNN for 28x28 inputs: a stride-2 stem, 3 more conv-BN-ReLU layers, 2 max-pools,
    global pooling and a linear head (about 0.5 M MACs at width 16: cheap enough for 2 shared cores)."""
    w = [width, width, 2 * width, 4 * width]

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, w[0], 2), *block(w[0], w[1]), nn.MaxPool2d(2),
        *block(w[1], w[2]), nn.MaxPool2d(2),
        *block(w[2], w[3]), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(w[3], classes),
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def run(args: argparse.Namespace) -> list[Row]:
    """Every (criterion, sparsity) pair plus the dense baseline; one row each."""
    xtr, ytr, xte, yte = fashion_mnist(args.train_limit, args.test_limit)
    calib = list(batches(xtr, ytr, args.calib_batch, shuffle=True, seed=args.seed))[: args.calib_batches]
    example = xtr[:1]
    torch.manual_seed(args.seed)
    init = cnn(args.width)
    dense_params = count_params(init)
    rows: list[Row] = []

    t0 = time.perf_counter()
    dense = copy.deepcopy(init)
    train(dense, xtr, ytr, args.epochs, seed=args.seed)
    rows.append({"criterion": "dense", "sparsity": 0.0, "params": dense_params, "params_kept": 1.0,
                 "macs_kept": 1.0, "accuracy": evaluate(dense, xte, yte), "seconds": time.perf_counter() - t0})
    print(f"dense: {rows[-1]['accuracy']:.4f}", flush=True)

    for sparsity in args.sparsities:
        for criterion in args.criteria:
            t0 = time.perf_counter()
            result = prune_at_init(
                copy.deepcopy(init), example, data=calib, criterion=criterion,
                target=f"params={1.0 - sparsity:.4f}", batches=args.calib_batches,
                global_ranking=args.allocation == "global", seed=args.seed,
            )
            model = result.model
            train(model, xtr, ytr, args.epochs, seed=args.seed)
            report = result.report
            rows.append({
                "criterion": criterion, "sparsity": sparsity, "params": count_params(model),
                "params_kept": report.params_after / report.params_before,
                "macs_kept": report.macs_after / report.macs_before,
                "accuracy": evaluate(model, xte, yte), "seconds": time.perf_counter() - t0,
            })
            print(f"{criterion} @ {sparsity:.0%}: {rows[-1]['accuracy']:.4f} "
                  f"(params kept {rows[-1]['params_kept']:.3f}, {rows[-1]['seconds']:.0f} s)", flush=True)
    return rows


def plot(ax: object, rows: Sequence[Row]) -> None:
    """Accuracy against sparsity, one line per criterion, the dense accuracy dashed."""
    dense = next((r["accuracy"] for r in rows if r["criterion"] == "dense"), None)
    for criterion in dict.fromkeys(r["criterion"] for r in rows if r["criterion"] != "dense"):
        pts = sorted((r["sparsity"], r["accuracy"]) for r in rows if r["criterion"] == criterion)
        ax.plot([p[0] * 100 for p in pts], [p[1] for p in pts], marker="o", label=criterion)
    if dense is not None:
        ax.axhline(dense, color="k", linestyle="--", label="dense")
    ax.set_xlabel("parameters removed before training (%)")
    ax.set_ylabel("test accuracy after training")
    ax.legend()
    ax.grid(alpha=0.3)


def verdict(rows: Sequence[Row]) -> str:
    """Whether snip, grasp and crop beat random at the highest sparsity."""
    top = max(r["sparsity"] for r in rows)
    acc = {r["criterion"]: r["accuracy"] for r in rows if r["sparsity"] == top}
    if "random" not in acc:
        return ""
    lines = []
    for c in ("snip", "grasp", "crop"):
        if c in acc:
            diff = acc[c] - acc["random"]
            lines.append(f"* {c} vs random at {top:.0%}: {diff * 100:+.2f} points "
                         f"({'beats' if diff > 0 else 'does not beat'} random)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: small data, 1 epoch, 90%% only, < 2 minutes")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--train-limit", type=int, default=20000)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--calib-batches", type=int, default=8)
    p.add_argument("--calib-batch", type=int, default=128)
    p.add_argument("--allocation", choices=("global", "local"), default="global")
    p.add_argument("--criteria", nargs="+", default=list(CRITERIA))
    p.add_argument("--sparsities", nargs="+", type=float, default=list(SPARSITIES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default=None, help="results file stem (default: before_training[_quick])")
    p.add_argument("--out-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.width, args.calib_batches, args.train_limit = 1, 8, 2, 3000
        args.test_limit = args.test_limit or 1000
        args.sparsities = [0.9]
    set_threads(args.threads)
    t0 = time.perf_counter()
    rows = run(args)
    notes = (
        f"Fashion-MNIST CNN (width {args.width}), pruned at initialisation by spa_core.workflows.prune_at_init "
        f"({args.allocation} allocation, parameter budget, {args.calib_batches} calibration batches of "
        f"{args.calib_batch}), then trained {args.epochs} epoch(s) on {len(fashion_mnist(args.train_limit, 1)[0])} "
        f"images (Adam, one-cycle), seed {args.seed}. Sparsity = fraction of parameters removed. "
        f"Total {time.perf_counter() - t0:.0f} s.\n\n" + verdict(rows)
    )
    name = args.name or ("before_training_quick" if args.quick else "before_training")
    write_results(name, rows, COLUMNS, plot, notes=notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
