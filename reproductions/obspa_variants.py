# ruff: noqa: E402  (BLAS/OpenMP thread counts are set before numpy and torch are imported)
"""Which data-free OBSPA settings to make the default: variants compared on a validation split.

For each trained model of :mod:`obspa_models` (the same cached models as
:mod:`no_finetune`), data-free OBSPA (``synth="bn"``) prunes 30 % and 50 % of the MACs
with each variant of ``allocation`` and ``damp``; the pruned models are scored on a
*validation* split (the last training images, never used for training). The test set is
not touched: this is how :func:`spa_core.obspa.prune_obspa`'s defaults are chosen.

    python reproductions/obspa_variants.py            # all three models, 30 % and 50 %
    python reproductions/obspa_variants.py --quick    # one small model, 50 % only
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproductions import obspa_models as om
from reproductions.common import CACHE_DIR, Row, fashion_mnist, set_threads, write_results
from reproductions.no_finetune import onnx_accuracy, onnx_macs
from spa_core.obspa import prune_obspa

VARIANTS: dict[str, dict[str, object]] = {
    "uniform, damp 0.01": {"allocation": "uniform", "damp": 0.01},
    "uniform, damp 0.1": {"allocation": "uniform", "damp": 0.1},
    "global, damp 0.01": {"allocation": "global", "damp": 0.01},
    "global, damp 0.1": {"allocation": "global", "damp": 0.1},
}
COLUMNS = ("model", "variant", "macs_target", "macs_removed", "val_accuracy", "val_relative", "seconds")


def summary(rows: Sequence[Row]) -> str:
    """Mean and worst validation accuracy relative to dense, per variant."""
    lines = ["Validation accuracy relative to dense, per variant (mean / worst over models and targets):"]
    for variant in dict.fromkeys(r["variant"] for r in rows if r["variant"] != "dense"):
        rel = [r["val_relative"] for r in rows if r["variant"] == variant]
        lines.append(f"* {variant}: mean {np.mean(rel):.4f}, worst {min(rel):.4f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", nargs="+", default=list(om.MODELS))
    p.add_argument("--targets", nargs="+", type=float, default=[0.3, 0.5])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-images", type=int, default=15000)
    p.add_argument("--val-images", type=int, default=2000)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--name", default=None)
    p.add_argument("--out-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.targets, args.train_images, args.val_images, args.samples = ["resnet14"], [0.5], 2000, 500, 64
    set_threads(1)
    xtr, ytr, _, _ = fashion_mnist(None, 1)
    xval, yval = xtr[-args.val_images :], ytr[-args.val_images :]
    rows: list[Row] = []
    t0 = time.perf_counter()
    for name in args.models:
        model, _ = om.trained(name, CACHE_DIR, args.epochs, xtr[: args.train_images].numpy(),
                              ytr[: args.train_images].numpy())
        base = om.export(model)
        dense_macs, dense_val = onnx_macs(base), onnx_accuracy(base, xval, yval)
        rows.append({"model": name, "variant": "dense", "macs_target": 0.0, "macs_removed": 0.0,
                     "val_accuracy": dense_val, "val_relative": 1.0, "seconds": 0.0})
        for target in args.targets:
            for variant in args.variants:
                t1 = time.perf_counter()
                out = prune_obspa(base, macs_target=target, synth="bn", samples=args.samples, progress=False,
                                  batch_size=32, **VARIANTS[variant])
                seconds = time.perf_counter() - t1
                acc = onnx_accuracy(out.onnx, xval, yval)
                rows.append({"model": name, "variant": variant, "macs_target": target,
                             "macs_removed": 1.0 - onnx_macs(out.onnx) / dense_macs, "val_accuracy": acc,
                             "val_relative": acc / dense_val, "seconds": seconds})
                print(f"{name} {variant} @ {target:.0%}: val {acc:.4f} ({acc / dense_val:.3f}), {seconds:.0f} s",
                      flush=True)
    notes = (f"Data-free OBSPA (synth='bn', {args.samples} synthetic samples), no fine-tuning. Models trained "
             f"{args.epochs} epoch(s) on the first {args.train_images} Fashion-MNIST training images; accuracy on "
             f"the validation split (the last {args.val_images} training images); the test set is not used. "
             f"Total {time.perf_counter() - t0:.0f} s.\n\n" + summary(rows))
    write_results(args.name or ("obspa_variants_quick" if args.quick else "obspa_variants"), rows, COLUMNS,
                  notes=notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
