"""Prune any architecture: SPA and Torch-Pruning side by side on seven model families.

AlexNet-, VGG-, ResNet-, DenseNet-, MobileNetV2-, EfficientNet-B0- and ViT-style networks
(:mod:`arch_models`, sized for 28x28) are trained briefly on Fashion-MNIST, then pruned
after training by both tools with the same criterion - SPA ``l1`` and Torch-Pruning
``MagnitudeImportance(p=1)``, both averaged over a group's members and mean-normalised -
and fine-tuned identically. SPA prunes to a MACs budget (half the MACs by default, by
bisection on its per-group ratio); Torch-Pruning's per-layer ratio is then bisected until
its model has at most SPA's MACs. Both pruned models are measured with one counter (SPA's
ONNX MAC count of a fresh export of each torch module) and ``sum(p.numel())``.

Run: ``.venv/bin/python reproductions/any_architecture.py`` (``--quick``: a pipeline check
on 1 000 images; the numbers mean nothing). Writes
``reproductions/results/any_architecture{,_quick}.{md,csv,png}``.
"""

from __future__ import annotations

import argparse
import copy
import io
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arch_models import MODELS  # noqa: E402
from common import CACHE_DIR, evaluate, fashion_mnist, set_threads, train, write_results  # noqa: E402

from spa_core.macs import count_macs  # noqa: E402
from spa_core.prepare import prepare  # noqa: E402
from spa_core.workflows import prune_to_target  # noqa: E402

COLUMNS = ["model", "params", "macs", "acc_base", "tool", "tool_ratio", "params_kept", "macs_kept",
           "acc_pruned", "acc_finetuned", "prune_s"]
EXAMPLE = torch.zeros(1, 1, 28, 28)


def macs_of(model: nn.Module) -> int:
    """MACs of a torch module: SPA's ONNX counter on a fresh export (one counter for both tools)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (EXAMPLE,), buf, dynamo=False, input_names=["input"])
    graph = prepare(onnx.load_from_string(buf.getvalue()))
    return count_macs(graph.model, lambda name: graph.shapes[name])[0]


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def spa_prune(model: nn.Module, macs_kept: float) -> tuple[nn.Module, float]:
    """SPA, l1, to ``macs_kept`` of the original MACs; returns the pruned copy and its ratio."""
    result = prune_to_target(model, EXAMPLE, target=f"macs={macs_kept}", criterion="l1")
    return result.model, float(result.plan.options["ratio"])


def tp_prune(model: nn.Module, ratio: float) -> nn.Module:
    """Torch-Pruning 1.6: DependencyGraph + MagnitudePruner, L1 magnitude, ``ratio`` per layer."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    last_linear = [m for m in pruned.modules() if isinstance(m, nn.Linear)][-1]
    heads = {m: m.num_heads for m in pruned.modules() if isinstance(m, nn.MultiheadAttention)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(
            pruned, EXAMPLE, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio,
            ignored_layers=[last_linear], num_heads=heads,
        )
        pruner.step()
    for m in pruned.modules():  # TP leaves nn.MultiheadAttention's head_dim stale
        if isinstance(m, nn.MultiheadAttention):
            m.head_dim = m.embed_dim // m.num_heads
    return pruned


def tp_match(model: nn.Module, budget: int, iterations: int) -> tuple[nn.Module, float, float]:
    """Bisect TP's ratio for the largest model with at most ``budget`` MACs; also returns seconds of one prune."""
    lo, hi = 0.0, 0.95
    best, best_ratio, one_prune = None, hi, 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        t0 = time.perf_counter()
        pruned = tp_prune(model, mid)
        one_prune = time.perf_counter() - t0
        if macs_of(pruned) > budget:
            lo = mid
        else:
            hi, best, best_ratio = mid, pruned, mid
    if best is None:
        best, best_ratio = tp_prune(model, hi), hi
    return best, best_ratio, one_prune


def trained(name: str, x: torch.Tensor, y: torch.Tensor, epochs: int) -> tuple[nn.Module, float]:
    """The model after ``epochs`` of training (cached in ``common.CACHE_DIR``, ~/.cache/spa_reproductions)."""
    torch.manual_seed(0)
    model = MODELS[name]()
    path = CACHE_DIR / f"arch_{name}_e{epochs}_n{len(x)}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path))
        return model.eval(), 0.0
    seconds = train(model, x, y, epochs)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval(), seconds


def run_model(name: str, data: tuple[torch.Tensor, ...], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Train (or load), prune with both tools at one MACs budget, fine-tune both; two rows."""
    xtr, ytr, xte, yte = data
    model, train_s = trained(name, xtr, ytr, cfg["epochs"])
    base = {"model": name, "params": params_of(model), "macs": macs_of(model), "acc_base": evaluate(model, xte, yte)}
    print(f"{name}: trained in {train_s:.0f} s, accuracy {base['acc_base']:.4f}", file=sys.stderr)
    t0 = time.perf_counter()
    spa_model, spa_ratio = spa_prune(model, cfg["macs_kept"])
    spa_s = time.perf_counter() - t0
    budget = macs_of(spa_model)
    rows = []
    try:
        tp_model, tp_ratio, tp_s = tp_match(model, budget, cfg["bisect"])
        tools = [("SPA", spa_model, spa_ratio, spa_s), ("Torch-Pruning", tp_model, tp_ratio, tp_s)]
    except Exception as exc:  # noqa: BLE001 - a TP failure is a result to report, not a crash
        print(f"{name}: Torch-Pruning failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        tools = [("SPA", spa_model, spa_ratio, spa_s)]
        rows.append({**base, "tool": "Torch-Pruning", "tool_ratio": "failed", "acc_pruned": type(exc).__name__})
    for tool, pruned, ratio, seconds in tools:
        acc_pruned = evaluate(pruned, xte, yte)
        train(pruned, xtr, ytr, cfg["ft_epochs"], lr=cfg["ft_lr"], seed=1)
        rows.append({
            **base, "tool": tool, "tool_ratio": round(ratio, 4),
            "params_kept": f"{params_of(pruned) / base['params']:.1%}",
            "macs_kept": f"{macs_of(pruned) / base['macs']:.1%}", "acc_pruned": acc_pruned,
            "acc_finetuned": evaluate(pruned, xte, yte), "prune_s": round(seconds, 2),
        })
        print(f"{name} {tool}: {rows[-1]}", file=sys.stderr)
    return sorted(rows, key=lambda r: r["tool"] != "SPA")


def plot(ax: Any, rows: list[dict[str, Any]]) -> None:
    """Fine-tuned accuracy per model: SPA vs Torch-Pruning, with the unpruned accuracy."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    pos = np.arange(len(names))

    def acc(name: str, tool: str) -> float:
        vals = [r["acc_finetuned"] for r in rows if r["model"] == name and r["tool"] == tool]
        return float(vals[0]) if vals and isinstance(vals[0], float) else 0.0

    ax.bar(pos - 0.27, [next(r["acc_base"] for r in rows if r["model"] == n) for n in names], 0.27, label="unpruned")
    ax.bar(pos, [acc(n, "SPA") for n in names], 0.27, label="SPA + fine-tune")
    ax.bar(pos + 0.27, [acc(n, "Torch-Pruning") for n in names], 0.27, label="Torch-Pruning + fine-tune")
    ax.set_xticks(pos, names, fontsize=7)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7, loc="upper center", ncol=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pipeline check, numbers meaningless")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--macs-kept", type=float, default=0.5, help="MACs budget as a fraction of the original")
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--test-images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    set_threads(args.threads)
    cfg = {"epochs": 1 if args.quick else args.epochs, "ft_epochs": 1, "ft_lr": 1e-3, "macs_kept": args.macs_kept,
           "bisect": 3 if args.quick else 8}
    data = fashion_mnist(1000 if args.quick else args.train_images, 300 if args.quick else args.test_images)
    t0 = time.perf_counter()
    rows = [r for name in args.models.split(",") for r in run_model(name, data, cfg)]
    notes = (
        f"Fashion-MNIST, {len(data[0])} training / {len(data[2])} test images; {cfg['epochs']} epoch(s) of Adam "
        f"(one-cycle, lr 3e-3) before pruning, {cfg['ft_epochs']} epoch (lr {cfg['ft_lr']}) after, the same for "
        f"both tools. Budget: at most {cfg['macs_kept']:.0%} of the MACs. `tool_ratio`: SPA's per-group ratio "
        f"(found by bisection on the budget) or Torch-Pruning's per-layer `pruning_ratio` (bisected, "
        f"{cfg['bisect']} steps, to at most SPA's MACs). `prune_s`: one pruning (SPA: export, analysis, "
        f"budget search and surgery; TP: one DependencyGraph + step). Total {time.perf_counter() - t0:.0f} s."
    )
    write_results("any_architecture_quick" if args.quick else "any_architecture", rows, COLUMNS, plot, notes,
                  args.out_dir)


if __name__ == "__main__":
    main()
