# ruff: noqa: E402  (BLAS/OpenMP thread counts are set before numpy and torch are imported)
"""How much can any criterion gain before training? The headroom of issue #7's experiment.

Before training, the channels of one layer are exchangeable: their weights are drawn
independently from one distribution, so which of them a criterion keeps does not change
the distribution of the network it hands to training. (``before_training.py`` with
``--allocation local``, where every criterion keeps the same number of channels per layer,
finds every criterion within 0.5 points of random at 90 %.) What a criterion pruning at
initialisation really decides is the **width profile**: how many channels each layer keeps.

This script measures that headroom directly. It keeps hand-chosen width profiles of the
``before_training.py`` CNN (dense widths 16-16-32-64) at the same parameter budget (by
default 90 % of the parameters removed): uniform, which is what random pruning gives,
wide or thin early layers, wide late layers, a mid-layer bottleneck... Each profile is
cut out of the same initial weights as pruning would (random channels of each layer,
original initialisation scale), trained exactly as ``before_training.py`` trains, and
compared with uniform seed by seed (same initial weights, same training order). The best
profile's margin over uniform bounds what snip, grasp or crop could gain on this model
at this budget.

    python reproductions/init_allocation.py          # results/init_allocation.*: ~4 min, 1 core
    python reproductions/init_allocation.py --epochs 4 --train-limit 60000 --seeds 0 1 2 3 \
        --name init_allocation_long                  # results/init_allocation_long.*: ~15 min
    python reproductions/init_allocation.py --quick  # < 1 min, a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import copy
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproductions.before_training import cnn
from reproductions.common import Row, evaluate, fashion_mnist, set_threads, train, write_results

PROFILES: dict[str, tuple[float, ...]] = {
    "uniform (random pruning)": (1, 1, 1, 1),
    "early x2": (2, 2, 1, 1),
    "early x3": (3, 3, 1, 1),
    "first layer x3": (3, 1, 1, 1),
    "taper (wide early)": (2, 1.5, 1, 0.75),
    "inverse taper (wide late)": (0.75, 1, 1.5, 2),
    "late x2": (1, 1, 1, 2),
    "mid x2": (1, 1, 2, 1),
    "early thin (x0.5)": (0.5, 0.5, 1, 1),
    "mid bottleneck (x0.3)": (1, 1, 0.3, 1),
}
COLUMNS = ("profile", "widths", "params", "params_kept", "macs_kept", "accuracy", "accuracy_std",
           "vs_uniform", "wins", "per_seed")


def conv_widths(model: nn.Sequential) -> list[int]:
    return [m.out_channels for m in model if isinstance(m, nn.Conv2d)]


def count_params(widths: Sequence[int], classes: int = 10) -> int:
    """Parameters of the CNN with these conv widths (convs without bias, BN scale and shift)."""
    fan_in = [1, *widths[:-1]]
    convs = sum(9 * a * b + 2 * b for a, b in zip(fan_in, widths, strict=True))
    return convs + widths[-1] * classes + classes


def count_macs(widths: Sequence[int], classes: int = 10) -> int:
    """Multiply-accumulates of the convs and the head for a 28x28 input (sides 14, 14, 7, 3)."""
    sides, fan_in = (14, 14, 7, 3), [1, *widths[:-1]]
    convs = sum(s * s * 9 * a * b for s, a, b in zip(sides, fan_in, widths, strict=True))
    return convs + widths[-1] * classes


def fit_profile(profile: Sequence[float], dense: Sequence[int], budget: float) -> list[int]:
    """The widest widths proportional to ``profile`` x ``dense`` (each in [1, dense]) within the budget."""

    def widths(scale: float) -> list[int]:
        return [min(d, max(1, round(scale * m * d))) for m, d in zip(profile, dense, strict=True)]

    low, high = 0.0, 4.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if count_params(widths(mid)) <= budget else (low, mid)
    return widths(low)


def cut(model: nn.Sequential, widths: Sequence[int], rng: np.random.Generator) -> tuple[nn.Sequential, list[torch.Tensor]]:
    """Keep ``widths[i]`` random channels of the i-th conv (and its BatchNorm and consumer), as
    channel pruning at initialisation does: the kept weights keep their initial values.
    Returns the smaller model and the kept channels of each conv."""
    model = copy.deepcopy(model)
    layers = list(model)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    previous, kept = None, []
    for i, width in zip(convs, widths, strict=True):
        conv, bn = layers[i], layers[i + 1]
        keep = torch.from_numpy(np.sort(rng.choice(conv.out_channels, width, replace=False)))
        weight = conv.weight.data[keep]
        if previous is not None:
            weight = weight[:, previous]
        conv.weight = nn.Parameter(weight.clone())
        conv.out_channels, conv.in_channels = width, weight.shape[1]
        bn.weight, bn.bias = nn.Parameter(bn.weight.data[keep].clone()), nn.Parameter(bn.bias.data[keep].clone())
        bn.running_mean, bn.running_var = bn.running_mean[keep].clone(), bn.running_var[keep].clone()
        bn.num_features = width
        previous = keep
        kept.append(keep)
    head = layers[-1]
    head.weight = nn.Parameter(head.weight.data[:, previous].clone())
    head.in_features = len(previous)
    return model, kept


def run(args: argparse.Namespace) -> tuple[list[Row], float]:
    xtr, ytr, xte, yte = fashion_mnist(args.train_limit, args.test_limit)
    dense_widths = conv_widths(cnn(args.width))
    dense_params = count_params(dense_widths)
    budget = (1.0 - args.sparsity) * dense_params
    fitted = {name: fit_profile(p, dense_widths, budget) for name, p in PROFILES.items() if name in args.profiles}
    accuracy: dict[str, list[float]] = {name: [] for name in fitted}
    for seed in args.seeds:
        torch.manual_seed(seed)
        init = cnn(args.width)
        assert count_params(conv_widths(init)) == sum(p.numel() for p in init.parameters())
        for name, widths in fitted.items():
            model, _ = cut(init, widths, np.random.default_rng(seed))
            assert sum(p.numel() for p in model.parameters()) == count_params(widths)
            train(model, xtr, ytr, args.epochs, seed=seed)
            accuracy[name].append(evaluate(model, xte, yte))
            print(f"seed {seed} {name} {widths}: {accuracy[name][-1]:.4f}", flush=True)
    base = accuracy.get(next(iter(PROFILES)))
    rows = []
    for name, widths in fitted.items():
        acc = accuracy[name]
        diffs = [a - b for a, b in zip(acc, base, strict=True)] if base else []
        rows.append({
            "profile": name, "widths": "-".join(map(str, widths)), "params": count_params(widths),
            "params_kept": count_params(widths) / dense_params,
            "macs_kept": count_macs(widths) / count_macs(dense_widths),
            "accuracy": statistics.fmean(acc), "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "vs_uniform": statistics.fmean(diffs) * 100 if diffs else 0.0,
            "wins": f"{sum(d > 0 for d in diffs)}/{len(diffs)}",
            "per_seed": " ".join(f"{a:.4f}" for a in acc),
        })
    return rows, budget


def plot(ax: object, rows: Sequence[Row]) -> None:
    """Accuracy (mean and standard deviation over seeds) per width profile; uniform dashed."""
    names = [r["profile"] for r in rows]
    ax.barh(names, [r["accuracy"] for r in rows], xerr=[r["accuracy_std"] for r in rows], capsize=3)
    ax.axvline(rows[0]["accuracy"], color="k", linestyle="--", label=rows[0]["profile"])
    low = min(r["accuracy"] - r["accuracy_std"] for r in rows)
    ax.set_xlim(max(0.0, low - 0.02), max(r["accuracy"] + r["accuracy_std"] for r in rows) + 0.01)
    ax.set_xlabel("test accuracy after training")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: small data, 1 epoch, 2 profiles, < 1 minute")
    p.add_argument("--sparsity", type=float, default=0.9, help="fraction of the parameters removed")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--train-limit", type=int, default=20000)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    p.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default=None)
    p.add_argument("--out-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.train_limit, args.test_limit = 1, 3000, args.test_limit or 1000
        args.seeds, args.profiles = [0, 1], list(PROFILES)[:2]
    set_threads(args.threads)
    t0 = time.perf_counter()
    rows, budget = run(args)
    best = max(rows[1:], key=lambda r: r["vs_uniform"], default=None)
    notes = (
        f"Width profiles of the Fashion-MNIST CNN of before_training.py (width {args.width}) at {args.sparsity:.0%} "
        f"of the parameters removed (budget {budget:.0f} parameters; each profile is the widest that fits). "
        f"Random channels of each layer are kept from the seed's initial weights, then trained {args.epochs} "
        f"epoch(s) on {args.train_limit} images exactly as before_training.py trains. Seeds {args.seeds}; "
        "vs_uniform = mean over seeds of (profile - uniform) in points, same seed, same initial weights and "
        f"training order; wins = seeds where the profile beat uniform. Total {time.perf_counter() - t0:.0f} s."
    )
    if best is not None:
        notes += (f"\n\n* best profile: {best['profile']} ({best['widths']}), {best['vs_uniform']:+.2f} points over "
                  f"uniform (better in {best['wins']} seeds). A criterion that only chooses widths gains what its "
                  "width profile gains; none of these profiles gains more than that.")
    write_results(args.name or ("init_allocation_quick" if args.quick else "init_allocation"), rows, COLUMNS, plot,
                  notes=notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
