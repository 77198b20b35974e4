# ruff: noqa: E402  (BLAS/OpenMP thread counts are set before numpy and torch are imported)
"""Pruning before training (issue #7): prune an untrained Fashion-MNIST CNN, then train it.

A small CNN is built with random weights, scored on a few calibration batches by
``snip``, ``grasp``, ``crop`` (gradient criteria designed for untrained weights), ``l1``
(magnitude) and ``random``, and pruned with :func:`spa_core.workflows.prune_at_init` to
a parameter budget (50 %, 70 % or 90 % of the parameters removed). Every network — the
dense one too — is then trained for the same number of epochs from its initial weights,
and its test accuracy is reported as the mean and standard deviation over seeds (each
seed draws its own initial weights, calibration batches and training order).

Two baselines: ``random`` (random channels, kept with their initial weights) and
``random-scratch`` (the same widths, weights drawn afresh). ``--no-batchnorm`` runs the CNN
without BatchNorms. With BatchNorms, a layer's channels are exchangeable and scale-free at
initialisation, so a criterion can only matter through the widths it keeps (measured by
``init_allocation.py``); without them, which channels stay decides how much signal the
pruned network starts with.

Two allocations are compared (``--allocation global local``): ``global`` ranks channels
across layers, so each criterion's normalised scores decide how wide every layer stays,
as SNIP and GraSP do; ``local`` removes the same fraction of every group, so only
*which* channels go differs between criteria. Either way the parameter budget is met by
bisection.

    python reproductions/before_training.py --seeds 0 1 2 3 --criteria snip grasp crop l1 random
                                   # results/before_training.* (50/70/90 %, 2 epochs on 20 k): ~20 min
    python reproductions/before_training.py --sparsities 0.9 --seeds 0 1 2 3 4 5 --epochs 4 \
        --train-limit 60000 --name before_training_long  # [--no-batchnorm --name before_training_no_bn]
                                   # results/before_training_long.*, _no_bn.*: ~25 min each, 1 core
    python reproductions/before_training.py --no-batchnorm --sparsities 0.9 --seeds 0 1 2 3 4 5 \
        --name before_training_no_bn_short             # ~4 min
    python reproductions/before_training.py --model mobilenet --sparsities 0.9 --seeds 0 1 2 3 \
        --name before_training_mobilenet               # ~10 min
    python reproductions/before_training.py --model lenet5 --sparsities 0.9 --seeds 0 1 2 3 --allocation global \
        --normalize params --reduce sum --epochs 4 --train-limit 60000 --name before_training_lenet5_long  # ~26 min
                                   # [2 epochs on 20 k, seeds 0-5: before_training_lenet5, ~7 min]
    python reproductions/before_training.py --quick    # < 1 min, a smoke run

``--model lenet5`` is LeNet-5-Caffe, whose hidden layer holds 93 % of the parameters. Ranked
globally by score per parameter (``--normalize params --reduce sum``, the knapsack form of
unstructured SNIP's global ranking), snip / grasp / crop keep the cheap convolutions wide and
thin the hidden layer, and beat uniform random pruning; with the default per-group ``mean``
normalisation they starve the first convolution and lose to it. The random baselines keep
their uniform allocation (``--random-normalize``).
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
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

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
from spa_core.importance import NORMALISATIONS, REDUCTIONS
from spa_core.workflows import prune_at_init

SCRATCH = "-scratch"
CRITERIA = ("snip", "grasp", "crop", "l1", "random", "random" + SCRATCH)
"""``--criteria random-scratch``: the widths ``random`` keeps, with freshly initialised weights (the
"train the pruned architecture from scratch" baseline of Liu et al., *Rethinking the Value of Network
Pruning*, ICLR 2019). It tells what a criterion gains from the initial weights it keeps."""
SPARSITIES = (0.5, 0.7, 0.9)
COLUMNS = ("allocation", "criterion", "sparsity", "seeds", "params_kept", "macs_kept", "widths", "accuracy",
           "accuracy_std", "per_seed", "seconds")


def cnn(width: int = 16, classes: int = 10, batchnorm: bool = True) -> nn.Sequential:
    """A VGG-like CNN for 28x28 inputs: a stride-2 stem, 3 more conv-BN-ReLU layers, 2 max-pools,
    global pooling and a linear head (about 0.5 M MACs at width 16: cheap enough for 2 shared cores).
    Without ``batchnorm`` the convolutions have biases instead (conv-ReLU, as in LeNet)."""
    w = [width, width, 2 * width, 4 * width]

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        if not batchnorm:
            return [nn.Conv2d(cin, cout, 3, stride, padding=1), nn.ReLU()]
        return [nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, w[0], 2), *block(w[0], w[1]), nn.MaxPool2d(2),
        *block(w[1], w[2]), nn.MaxPool2d(2),
        *block(w[2], w[3]), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(w[3], classes),
    )



class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 projection (a residual when shapes allow)."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet(classes: int = 10) -> nn.Sequential:
    """A MobileNetV2-style net for 28x28 inputs (46 k parameters): layers of very unequal widths
    (16- to 48-channel projections between 64- to 192-channel expansions) tied by residual adds."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        InvertedResidual(16, 24, 4, 2), InvertedResidual(24, 24, 4, 1),
        InvertedResidual(24, 48, 4, 2), InvertedResidual(48, 48, 4, 1),
        nn.Conv2d(48, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes),
    )


def lenet5(classes: int = 10) -> nn.Sequential:
    """LeNet-5-Caffe, the CNN SNIP (Lee et al., ICLR 2019) and GraSP prune on MNIST: two 5x5
    convolutions (20 and 50 channels) with max-pools, a 500-unit hidden layer and the classifier
    (431 k parameters, 93 % of them in the hidden layer). Unlike the other two nets, its parameters
    sit almost all in one layer, so where a criterion spends the budget can matter."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Linear(500, classes),
    )


class ModelChoice(NamedTuple):
    """A ``--model``: how to build it from the arguments, and how the results' notes name it."""

    build: Callable[[argparse.Namespace], nn.Module]
    describe: Callable[[argparse.Namespace], str]


MODELS = {
    "cnn": ModelChoice(lambda args: cnn(args.width, batchnorm=not args.no_batchnorm),
                       lambda args: f"CNN (width {args.width}{', no BatchNorm' if args.no_batchnorm else ''})"),
    "mobilenet": ModelChoice(lambda args: mobilenet(), lambda args: "MobileNetV2-style net"),
    "lenet5": ModelChoice(lambda args: lenet5(), lambda args: "LeNet-5-Caffe"),
}


def widths(model: nn.Module) -> list[int]:
    """The output width of every convolution and linear layer, in order (the allocation a pruning chose)."""
    return [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def reinitialise(model: nn.Module, seed: int) -> None:
    """Draw every layer's weights afresh for its pruned shape (PyTorch's default initialisation)."""
    torch.manual_seed(seed + 10_000)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def run_seed(args: argparse.Namespace, seed: int) -> list[Row]:
    """The dense baseline and every (allocation, sparsity, criterion) from one seed's initial weights."""
    xtr, ytr, xte, yte = fashion_mnist(args.train_limit, args.test_limit)
    calib = list(batches(xtr, ytr, args.calib_batch, shuffle=True, seed=seed))[: args.calib_batches]
    example = xtr[:1]
    torch.manual_seed(seed)
    init = MODELS[args.model].build(args)
    rows: list[Row] = []

    t0 = time.perf_counter()
    dense = copy.deepcopy(init)
    train(dense, xtr, ytr, args.epochs, seed=seed)
    rows.append({"allocation": "-", "criterion": "dense", "sparsity": 0.0, "seed": seed, "params_kept": 1.0,
                 "macs_kept": 1.0, "widths": widths(dense), "accuracy": evaluate(dense, xte, yte), "seconds": time.perf_counter() - t0})
    print(f"seed {seed} dense: {rows[-1]['accuracy']:.4f}", flush=True)

    for allocation in args.allocation:
        for sparsity in args.sparsities:
            for criterion in args.criteria:
                t0 = time.perf_counter()
                result = prune_at_init(
                    copy.deepcopy(init), example, data=calib, criterion=criterion.removesuffix(SCRATCH),
                    target=f"{args.budget}={1.0 - sparsity:.4f}", batches=args.calib_batches,
                    global_ranking=allocation == "global", seed=seed,
                    normalize=args.random_normalize if criterion.startswith("random") else args.normalize,
                    reduce=args.reduce, steps=args.steps,
                )
                model = result.model
                if criterion.endswith(SCRATCH):
                    reinitialise(model, seed)
                train(model, xtr, ytr, args.epochs, seed=seed)
                report = result.report
                rows.append({
                    "allocation": allocation, "criterion": criterion, "sparsity": sparsity, "seed": seed,
                    "params_kept": report.params_after / report.params_before,
                    "macs_kept": report.macs_after / report.macs_before, "widths": widths(model),
                    "accuracy": evaluate(model, xte, yte), "seconds": time.perf_counter() - t0,
                })
                r = rows[-1]
                print(f"seed {seed} {allocation} {criterion} @ {sparsity:.0%}: {r['accuracy']:.4f} "
                      f"(params kept {r['params_kept']:.3f}, widths {r['widths']}, {r['seconds']:.0f} s)", flush=True)
    return rows


def aggregate(runs: Sequence[Row]) -> list[Row]:
    """One row per (allocation, criterion, sparsity): means over seeds (the widths too, rounded), the
    accuracy's standard deviation (sample, 0 for one seed) and every seed's accuracy."""
    keys = list(dict.fromkeys((r["allocation"], r["criterion"], r["sparsity"]) for r in runs))
    rows = []
    for allocation, criterion, sparsity in keys:
        rs = [r for r in runs if (r["allocation"], r["criterion"], r["sparsity"]) == (allocation, criterion, sparsity)]
        acc = [r["accuracy"] for r in rs]
        rows.append({
            "allocation": allocation, "criterion": criterion, "sparsity": sparsity, "seeds": len(rs),
            "params_kept": statistics.fmean(r["params_kept"] for r in rs),
            "macs_kept": statistics.fmean(r["macs_kept"] for r in rs),
            "widths": "-".join(str(round(statistics.fmean(w))) for w in zip(*(r["widths"] for r in rs), strict=True)),
            "accuracy": statistics.fmean(acc), "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "per_seed": " ".join(f"{a:.4f}" for a in acc), "seconds": statistics.fmean(r["seconds"] for r in rs),
        })
    return rows


def plot(ax: object, rows: Sequence[Row]) -> None:
    """Accuracy (mean and standard deviation over seeds) against sparsity, one line per criterion and
    allocation; bars per criterion when there is one sparsity. The dense accuracy is dashed."""
    dense = next((r["accuracy"] for r in rows if r["criterion"] == "dense"), None)
    pruned = [r for r in rows if r["criterion"] != "dense"]
    keys = list(dict.fromkeys((r["allocation"], r["criterion"]) for r in pruned))
    if len({r["sparsity"] for r in pruned}) == 1:
        criteria = list(dict.fromkeys(k[1] for k in keys))
        allocations = list(dict.fromkeys(k[0] for k in keys))
        width = 0.8 / len(allocations)
        for j, allocation in enumerate(allocations):
            at = {r["criterion"]: r for r in pruned if r["allocation"] == allocation}
            xs = [i + j * width for i, c in enumerate(criteria) if c in at]
            ax.bar(xs, [at[c]["accuracy"] for c in criteria if c in at], width,
                   yerr=[at[c]["accuracy_std"] for c in criteria if c in at], capsize=3, label=allocation)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(criteria))], criteria)
        low = min(r["accuracy"] - r["accuracy_std"] for r in pruned)
        ax.set_ylim(max(0.0, low - 0.05), min(1.0, max(dense or 0.0, low) + 0.02))
        ax.set_xlabel(f"criterion, {pruned[0]['sparsity']:.0%} of the parameters removed before training")
    else:
        for key in keys:
            pts = sorted((r["sparsity"], r["accuracy"], r["accuracy_std"]) for r in pruned
                         if (r["allocation"], r["criterion"]) == key)
            ax.errorbar([p[0] * 100 for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, linestyle="-" if key[0] == "global" else "--", label=f"{key[1]} ({key[0]})")
        ax.set_xlabel("parameters removed before training (%)")
    if dense is not None:
        ax.axhline(dense, color="k", linestyle="--", label="dense")
    ax.set_ylabel("test accuracy after training")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def verdict(rows: Sequence[Row], runs: Sequence[Row]) -> str:
    """Whether snip, grasp and crop (and l1, and their ``-scratch`` forms, when run) beat random (and
    ``random-scratch``, when run) at the highest sparsity, per allocation: the difference of the means, and in how many seeds the criterion won
    (same seed, same initial weights). "beats" needs the difference to exceed both seed spreads."""
    top = max(r["sparsity"] for r in rows)
    lines = []
    for allocation in dict.fromkeys(r["allocation"] for r in rows if r["criterion"] != "dense"):
        at = {r["criterion"]: r for r in rows if r["allocation"] == allocation and r["sparsity"] == top}

        def per_seed(criterion: str, allocation: str = allocation) -> dict[int, float]:
            return {r["seed"]: r["accuracy"] for r in runs
                    if (r["allocation"], r["criterion"], r["sparsity"]) == (allocation, criterion, top)}

        for baseline in ("random", "random" + SCRATCH):
            if baseline not in at:
                continue
            base = per_seed(baseline)
            for c in (name + suffix for suffix in ("", SCRATCH) for name in ("snip", "grasp", "crop", "l1")):
                if c not in at:
                    continue
                diff = at[c]["accuracy"] - at[baseline]["accuracy"]
                mine = per_seed(c)
                wins = sum(mine[s] > base[s] for s in mine if s in base)
                noise = max(at[c]["accuracy_std"], at[baseline]["accuracy_std"])
                call = "within the seed spread of" if abs(diff) <= noise else ("beats" if diff > 0 else "loses to")
                lines.append(f"* {allocation}: {c} vs {baseline} at {top:.0%}: {diff * 100:+.2f} points "
                             f"(better in {wins}/{len(mine)} seeds; {call} {baseline})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: small data, 1 epoch, 90%% only, < 2 minutes")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--model", choices=sorted(MODELS), default="cnn",
                   help="the VGG-like CNN (default), a MobileNetV2-style net (mobilenet) or LeNet-5-Caffe (lenet5)")
    p.add_argument("--no-batchnorm", action="store_true", help="the CNN without BatchNorms (conv-ReLU with biases)")
    p.add_argument("--train-limit", type=int, default=20000)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--calib-batches", type=int, default=8)
    p.add_argument("--calib-batch", type=int, default=128)
    p.add_argument("--allocation", nargs="+", choices=("global", "local"), default=["global", "local"])
    p.add_argument("--criteria", nargs="+", default=list(CRITERIA))
    p.add_argument("--sparsities", nargs="+", type=float, default=list(SPARSITIES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", choices=("params", "macs"), default="params",
                   help="what the sparsity removes: parameters (as SNIP/GraSP report it) or MACs")
    p.add_argument("--steps", type=int, default=1,
                   help="prune in this many steps, re-scoring the pruned network before each (iterative SNIP)")
    p.add_argument("--reduce", choices=sorted(REDUCTIONS), default="mean",
                   help="how a channel's scores in the group's members are combined")
    p.add_argument("--normalize", choices=sorted(NORMALISATIONS), default="mean",
                   help="per-group score normalisation before global ranking ('none': raw scores compete "
                        "across layers, as in unstructured SNIP)")
    p.add_argument("--random-normalize", choices=sorted(NORMALISATIONS), default="mean",
                   help="the normalisation of the random baselines (default 'mean': every layer keeps about the same "
                        "fraction of its channels; random scores per parameter would starve the cheap layers)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default=None, help="results file stem (default: before_training[_quick])")
    p.add_argument("--out-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.width, args.calib_batches, args.train_limit = 1, 8, 2, 3000
        args.test_limit = args.test_limit or 1000
        args.sparsities, args.seeds = [0.9], [0]
    set_threads(args.threads)
    t0 = time.perf_counter()
    name = args.name or ("before_training_quick" if args.quick else "before_training")
    n_train = len(fashion_mnist(args.train_limit, 1)[0])
    runs: list[Row] = []
    for seed in args.seeds:  # the results are rewritten after every seed: an interrupted run keeps whole seeds
        runs += run_seed(args, seed)
        rows = aggregate(runs)
        done = sorted({r["seed"] for r in runs})
        notes = (
            f"Fashion-MNIST {MODELS[args.model].describe(args)}, pruned at initialisation by spa_core.workflows.prune_at_init "
            f"({' and '.join(args.allocation)} allocation, {args.budget} budget, scores normalised by "
            f"'{args.normalize}' (random: '{args.random_normalize}'), reduced by '{args.reduce}', {args.calib_batches} calibration "
            f"batches of {args.calib_batch}, BatchNorms on batch statistics while scoring), then trained {args.epochs} epoch(s) on {n_train} images (Adam, "
            f"one-cycle) and tested on {args.test_limit or 'all 10000'} test images. Seeds {done} (initial weights, "
            f"calibration batches, training order); accuracy = mean over seeds, accuracy_std = sample standard "
            f"deviation, per_seed in seed order. Sparsity = fraction of {args.budget} removed. "
            f"Total {time.perf_counter() - t0:.0f} s.\n\n" + verdict(rows, runs)
        )
        write_results(name, rows, COLUMNS, plot, notes=notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
