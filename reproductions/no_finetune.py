# ruff: noqa: E402  (BLAS/OpenMP thread counts are set before numpy and torch are imported)
"""Pruning with no fine-tuning (issue #8): OBSPA, with and without data, against magnitude
pruning and Torch-Pruning, at the same MACs.

For each trained Fashion-MNIST model of :mod:`obspa_models` (ResNet-14, a VGG, a
MobileNetV2), 30 % and 50 % of the MACs are removed, and the pruned model is evaluated
as it is — no fine-tuning, no BatchNorm recalibration:

* ``obspa-data``: :func:`spa_core.obspa.prune_obspa` with 256 training images;
* ``obspa-inversion-bn`` / ``obspa-inversion`` / ``obspa-bn`` / ``obspa-gauss``: data-free
  OBSPA, inputs optimised until every BatchNorm sees its running statistics (then, for
  ``-bn``, the default, propagated with the BatchNorm statistics frozen from them), Gaussian noise
  propagated with BatchNorm statistics matched, or plain Gaussian noise;
* ``obspa-independent`` / ``obspa-data-independent``: the default data-free OBSPA / OBSPA with
  data, each consumer compensated from its dense inputs alone (``compensation="independent"``,
  the default before stop 17) instead of sequentially on the pruned model's inputs;
* ``obspa-bn-uniform`` (on request): data-free OBSPA with ``allocation="uniform"`` (the
  default before ``reproductions/obspa_variants.py`` chose ``"global"`` on validation data);
* ``l1``: spa_core's magnitude criterion with its default uniform (per-group) allocation,
  no compensation;
* ``tp-magnitude`` / ``tp-hessian``: Torch-Pruning 1.6.1's ``MetaPruner`` with
  ``MagnitudeImportance`` / ``HessianImportance`` (64 per-sample gradients), its
  ``pruning_ratio`` found by bisection so that its MACs match the target.

All MACs are counted by :mod:`spa_core.macs` on the exported ONNX (Torch-Pruning's own
counter drives its bisection). Which data-free synthesis is better is judged on a
*validation* split of the training images the models were not trained on, never on the
test set; the table reports test accuracy.

    python reproductions/no_finetune.py            # full (trains/caches the models first)
    python reproductions/no_finetune.py --quick    # < 2 min smoke run: one small model
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
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reproductions import obspa_models as om
from reproductions.common import CACHE_DIR, Row, evaluate, fashion_mnist, set_threads, write_results
from spa_core.macs import count_macs
from spa_core.obspa import prune_obspa
from spa_core.prepare import prepare
from spa_core.workflows import PruningSession, Target, solve_ratio

METHODS = ("obspa-data", "obspa-data-independent", "obspa-inversion-bn", "obspa-independent", "obspa-inversion",
           "obspa-bn", "obspa-gauss", "l1", "tp-magnitude", "tp-hessian")
# compared on the validation split; the first is the default
DATA_FREE = ("obspa-inversion-bn", "obspa-independent", "obspa-inversion", "obspa-bn", "obspa-gauss")
EXTRA_METHODS = ("obspa-bn-uniform",)  # data-free OBSPA, uniform allocation (--methods ... obspa-bn-uniform)
COLUMNS = ("model", "method", "macs_target", "macs_removed", "accuracy", "relative", "val_accuracy", "seconds")


# ------------------------------------------------------------------ measuring
def dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose inputs and outputs have a symbolic batch (OBSPA's output is prepared at batch 1)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for value in [*out.graph.input, *out.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = "batch"
    del out.graph.value_info[:]
    return out


def onnx_accuracy(model: onnx.ModelProto, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy of an ONNX model in onnxruntime (one thread)."""
    model = dynamic_batch(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    xs = x.numpy()
    correct = 0
    for i in range(0, len(xs), batch):
        logits = sess.run(None, {name: xs[i : i + batch]})[0]
        correct += int((logits.argmax(1) == y.numpy()[i : i + batch]).sum())
    return correct / len(xs)


def onnx_macs(model: onnx.ModelProto) -> int:
    """MACs of an ONNX model at batch 1, counted by :mod:`spa_core.macs`."""
    g = prepare(model, {model.graph.input[0].name: (1, 1, 28, 28)})
    return count_macs(g.model, lambda n: g.shapes[n])[0]


# ------------------------------------------------------------------ Torch-Pruning
def _classifier(model: nn.Module) -> list[nn.Module]:
    """The last Linear layer (its outputs are the classes and stay)."""
    return [[m for m in model.modules() if isinstance(m, nn.Linear)][-1]]


def tp_prune(model: nn.Module, ratio: float, importance: object) -> nn.Module:
    """A pruned copy of ``model`` by Torch-Pruning's MetaPruner at ``pruning_ratio=ratio``."""
    import torch_pruning as tp

    example = torch.zeros(1, 1, 28, 28)
    pruner = tp.pruner.MetaPruner(model, example, importance=importance, pruning_ratio=ratio,
                                  ignored_layers=_classifier(model))
    pruner.step()
    return model.eval()


def tp_ratio_for(model: nn.Module, macs_removed: float, iterations: int = 14) -> float:
    """Smallest ``pruning_ratio`` whose model has at most ``1 - macs_removed`` of the MACs (TP's counter).

    TP's uniform allocation removes the same number of channels per group whatever the
    importance, so the ratio is found once with magnitudes and reused for every importance.
    """
    import torch_pruning as tp

    example = torch.zeros(1, 1, 28, 28)
    dense, _ = tp.utils.count_ops_and_params(model, example)
    low, high = 0.0, 0.95
    for _ in range(iterations):
        mid = (low + high) / 2
        pruned = tp_prune(copy.deepcopy(model), mid, tp.importance.MagnitudeImportance(p=1))
        macs, _ = tp.utils.count_ops_and_params(pruned, example)
        if macs <= (1 - macs_removed) * dense:
            high = mid
        else:
            low = mid
    return high


def tp_hessian(model: nn.Module, ratio: float, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """TP's HessianImportance (squared per-sample gradients, OBD) from ``len(x)`` samples."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    imp = tp.importance.HessianImportance()
    imp.zero_grad()
    losses = F.cross_entropy(model(x), y, reduction="none")
    for i, loss in enumerate(losses):
        model.zero_grad()
        loss.backward(retain_graph=i < len(losses) - 1)
        imp.accumulate_grad(model)
    return tp_prune(model, ratio, imp)


# ------------------------------------------------------------------ one model
def prune_all(
    name: str, model: nn.Module, targets: Sequence[float], methods: Sequence[str], data: dict[str, torch.Tensor],
    args: argparse.Namespace,
) -> tuple[list[Row], dict[str, float]]:
    """Rows for every (target, method) of one trained model, and OBSPA's seconds per target."""
    import torch_pruning as tp

    base = om.export(model)
    dense_macs = onnx_macs(base)
    xte, yte, xval, yval = data["x_test"], data["y_test"], data["x_val"], data["y_val"]
    dense_acc = onnx_accuracy(base, xte, yte)
    rows: list[Row] = [{"model": name, "method": "dense", "macs_target": 0.0, "macs_removed": 0.0,
                        "accuracy": dense_acc, "relative": 1.0, "val_accuracy": onnx_accuracy(base, xval, yval),
                        "seconds": 0.0}]
    calib = data["x_calib"].numpy()
    obspa_kw = {"damp": args.damp, "progress": False, "batch_size": 64}
    builders: dict[str, Callable[[float], onnx.ModelProto | nn.Module]] = {
        "obspa-data": lambda t: prune_obspa(base, macs_target=t, calibration={"input": calib}, **obspa_kw),
        "obspa-data-independent": lambda t: prune_obspa(base, macs_target=t, calibration={"input": calib},
                                                        compensation="independent", **obspa_kw),
        "obspa-independent": lambda t: prune_obspa(base, macs_target=t, samples=args.inversion_samples,
                                                   inversion_steps=args.inversion_steps, compensation="independent",
                                                   **obspa_kw),
        "obspa-inversion": lambda t: prune_obspa(base, macs_target=t, synth="inversion", samples=args.inversion_samples,
                                                 inversion_steps=args.inversion_steps, **obspa_kw),
        "obspa-inversion-bn": lambda t: prune_obspa(base, macs_target=t, synth="inversion-bn",
                                                    samples=args.inversion_samples,
                                                    inversion_steps=args.inversion_steps, **obspa_kw),
        "obspa-bn": lambda t: prune_obspa(base, macs_target=t, synth="bn", samples=args.samples, **obspa_kw),
        "obspa-gauss": lambda t: prune_obspa(base, macs_target=t, synth="gaussian", samples=args.samples, **obspa_kw),
        "obspa-bn-uniform": lambda t: prune_obspa(base, macs_target=t, synth="bn", samples=args.samples,
                                                  allocation="uniform", **obspa_kw),
    }
    session = PruningSession.open(base, criterion="l1") if "l1" in methods else None
    builders["l1"] = lambda t: session.prune(solve_ratio(session, Target("macs", 1.0 - t)))
    times: dict[str, float] = {}
    for target in targets:
        ratio = tp_ratio_for(model, target) if any(m.startswith("tp-") for m in methods) else 0.0
        builders["tp-magnitude"] = lambda t, r=ratio: tp_prune(copy.deepcopy(model), r, tp.importance.MagnitudeImportance(p=1))
        builders["tp-hessian"] = lambda t, r=ratio: tp_hessian(model, r, data["x_grad"], data["y_grad"])
        for method in methods:
            t0 = time.perf_counter()
            out = builders[method](target)
            seconds = time.perf_counter() - t0
            pruned = om.export(out) if isinstance(out, nn.Module) else out.onnx
            if method.startswith("obspa"):
                times[f"{method}@{target:.0%}"] = seconds
            acc = onnx_accuracy(pruned, xte, yte)
            # validation accuracy only where a choice is made from it (the data-free synthesis)
            val = onnx_accuracy(pruned, xval, yval) if method.startswith(DATA_FREE) else ""
            rows.append({"model": name, "method": method, "macs_target": target,
                         "macs_removed": 1.0 - onnx_macs(pruned) / dense_macs, "accuracy": acc,
                         "relative": acc / dense_acc, "val_accuracy": val, "seconds": seconds})
            r = rows[-1]
            print(f"{name} {method} @ {target:.0%} MACs: acc {acc:.4f} ({r['relative']:.3f} of dense), "
                  f"MACs removed {r['macs_removed']:.3f}, {seconds:.1f} s", flush=True)
    return rows, times


# ------------------------------------------------------------------ report
def plot(ax: object, rows: Sequence[Row]) -> None:
    """Accuracy relative to dense, per model and method, at the largest target."""
    top = max(r["macs_target"] for r in rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "dense"))
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        vals = [next((r["relative"] for r in rows if r["model"] == m and r["method"] == method
                      and r["macs_target"] == top), 0.0) for m in models]
        ax.bar(np.arange(len(models)) + j * width, vals, width, label=method)
    ax.axhline(0.95, color="k", linestyle="--", linewidth=1, label="95 % of dense")
    ax.set_xticks(np.arange(len(models)) + 0.4 - width / 2, models)
    ax.set_ylabel(f"test accuracy / dense, {top:.0%} MACs removed, no fine-tuning")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)


def summary(rows: Sequence[Row], times: dict[str, dict[str, float]]) -> str:
    """OBSPA times, the synthesis comparison on validation data, and the goal check."""
    lines = ["OBSPA seconds per model (analyse + inputs + order + compensate):"]
    for model, t in times.items():
        lines.append(f"* {model}: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))
    pruned = [r for r in rows if r["method"] != "dense"]
    val = {m: np.mean([r["val_accuracy"] for r in pruned if r["method"] == m]) for m in DATA_FREE
           if any(r["method"] == m for r in pruned)}
    if len(val) > 1:
        best = max(val, key=val.get)
        lines.append("\nData-free synthesis on the validation split (mean accuracy over models and targets): "
                     + ", ".join(f"{m} {v:.4f}" for m, v in val.items()) + f" -> best: {best}.")
    top = max(r["macs_target"] for r in rows)
    for free in (*DATA_FREE[:2], "obspa-bn-uniform"):
        if not any(r["method"] == free for r in pruned):
            continue
        lines.append(f"\nGoal at {top:.0%} MACs removed: data-free OBSPA ({free}) >= 95 % of dense and above every "
                     "other no-fine-tuning option:")
        for model in dict.fromkeys(r["model"] for r in rows):
            at = {r["method"]: r for r in pruned if r["model"] == model and r["macs_target"] == top}
            if free not in at:
                continue
            rel = at[free]["relative"]
            others = {m: r["accuracy"] for m, r in at.items() if not m.startswith("obspa")}
            beats = all(at[free]["accuracy"] > a for a in others.values())
            lines.append(f"* {model}: {rel:.3f} of dense ({'meets' if rel >= 0.95 else 'misses'} 95 %)"
                         + (f"; {'beats' if beats else 'does not beat'} every non-OBSPA option (best other: "
                            f"{max(others, key=others.get)} {max(others.values()):.4f})" if others else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one small model, 50 %% only, < 2 minutes")
    p.add_argument("--models", nargs="+", default=list(om.MODELS))
    p.add_argument("--targets", nargs="+", type=float, default=[0.3, 0.5], help="fractions of MACs removed")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-images", type=int, default=15000, help="the first N training images train the models")
    p.add_argument("--val-images", type=int, default=2000, help="validation: the last N training images")
    p.add_argument("--test-limit", type=int, default=3000, help="the first N test images (CPU time)")
    p.add_argument("--samples", type=int, default=256, help="synthetic samples of data-free OBSPA (bn, gauss)")
    p.add_argument("--inversion-samples", type=int, default=128, help="inverted inputs of data-free OBSPA")
    p.add_argument("--inversion-steps", type=int, default=150, help="Adam steps per batch of inverted inputs")
    p.add_argument("--calib", type=int, default=256, help="training images of OBSPA with data")
    p.add_argument("--grad-samples", type=int, default=64, help="per-sample gradients of TP's HessianImportance")
    p.add_argument("--damp", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default=None)
    p.add_argument("--out-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.targets, args.train_images, args.val_images = ["resnet14"], [0.5], 2000, 500
        args.test_limit, args.samples, args.calib, args.grad_samples = 500, 64, 64, 8
        args.inversion_samples, args.inversion_steps = 64, 40
    set_threads(args.threads)
    xtr, ytr, xte, yte = fashion_mnist(None, args.test_limit)
    data = {"x_test": xte, "y_test": yte, "x_val": xtr[-args.val_images :], "y_val": ytr[-args.val_images :],
            "x_calib": xtr[: args.calib], "x_grad": xtr[: args.grad_samples], "y_grad": ytr[: args.grad_samples]}
    rows: list[Row] = []
    times: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for name in args.models:
        model, trained_s = om.trained(name, CACHE_DIR, args.epochs, xtr[: args.train_images].numpy(),
                                      ytr[: args.train_images].numpy())
        print(f"{name}: trained in {trained_s:.0f} s (0 = cached); torch accuracy {evaluate(model, xte, yte):.4f}",
              flush=True)
        model_rows, times[name] = prune_all(name, model, args.targets, args.methods, data, args)
        rows += model_rows
    notes = (f"Models trained {args.epochs} epoch(s) on the first {args.train_images} Fashion-MNIST training "
             f"images; validation = the last {args.val_images}; test = {len(xte)} test images. No fine-tuning. "
             f"OBSPA damp {args.damp}, global allocation (the default; obspa-bn-uniform: uniform), "
             f"{args.samples} synthetic (bn, gauss) / {args.inversion_samples} inverted ({args.inversion_steps} "
             f"Adam steps) / {args.calib} real samples, batches of 64. "
             f"Total {time.perf_counter() - t0:.0f} s.\n\n" + summary(rows, times))
    write_results(args.name or ("no_finetune_quick" if args.quick else "no_finetune"), rows, COLUMNS, plot,
                  notes=notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
