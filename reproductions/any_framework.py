"""Prune any framework: one small CNN in PyTorch, Keras, Flax NNX and MXNet Gluon.

Each framework trains the same architecture (:mod:`framework_cnns`) briefly on
Fashion-MNIST, SPA prunes it at two per-group ratios by l1 magnitude (through the
framework's adapter: the pruned model comes back in the same framework), and the pruned
model is fine-tuned briefly in its own framework (SPA's built-in loops for torch, Keras and
Flax; a Gluon loop in MXNet's environment, :mod:`mxnet_cnn`). The table gives accuracy
before pruning, right after pruning and after fine-tuning, with parameters and MACs.

Run: ``.venv/bin/python reproductions/any_framework.py`` (``--quick``: a pipeline check
on 2 000 images in under two minutes; the numbers mean nothing). Writes
``reproductions/results/any_framework{,_quick}.{md,csv,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402
from framework_cnns import FRAMEWORKS, Framework, accuracy, batch_list  # noqa: E402

import spa_core  # noqa: E402
from spa_core.datasets import load_fashion_mnist  # noqa: E402
from spa_core.workflows import finetune  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["framework", "ratio", "acc_base", "acc_pruned", "acc_finetuned", "params", "params_removed",
           "macs", "macs_removed", "prune_s", "finetune_s"]


def settings(quick: bool) -> dict[str, Any]:
    """Data sizes, epochs and learning rates of the full run or the quick check."""
    return {
        "train_limit": 1000 if quick else 10000, "test_limit": 300 if quick else 5000,
        "epochs": 1 if quick else 2, "ft_epochs": 1, "ft_max_batches": 4 if quick else None,
        "ratios": [0.5] if quick else [0.3, 0.6],
        "lr": 2e-3, "ft_lr": 5e-4, "batch": 128, "seed": 0, "criterion": "l1",
    }


def row(name: str, ratio: float, base: float, pruned: float, tuned: float, report: dict[str, Any],
        prune_s: float, ft_s: float) -> dict[str, Any]:
    """One table row from accuracies and an engine report (``Report.to_dict()`` form)."""
    return {
        "framework": name, "ratio": ratio, "acc_base": base, "acc_pruned": pruned, "acc_finetuned": tuned,
        "params": f"{report['params_before']:,} -> {report['params_after']:,}",
        "params_removed": f"{1 - report['params_after'] / report['params_before']:.1%}",
        "macs": f"{report['macs_before']:,} -> {report['macs_after']:,}",
        "macs_removed": f"{1 - report['macs_after'] / report['macs_before']:.1%}",
        "prune_s": round(prune_s, 2), "finetune_s": round(ft_s, 1),
    }


def run_native(key: str, fw: Framework, data: tuple[np.ndarray, ...], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Train, prune at each ratio, fine-tune: one framework in this process."""
    xtr, ytr, xte, yte = data
    train_batches = batch_list(xtr, ytr, fw.nhwc, cfg["batch"], cfg["seed"])
    model = fw.build(cfg["seed"])
    t0 = time.perf_counter()
    model = finetune(model, train_batches, framework=_fw_name(key), epochs=cfg["epochs"], lr=cfg["lr"])
    print(f"{fw.name}: trained in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    base = accuracy(fw, model, xte, yte)
    example = np.ascontiguousarray(xte[:1].transpose(0, 2, 3, 1) if fw.nhwc else xte[:1])
    rows = []
    for ratio in cfg["ratios"]:
        t1 = time.perf_counter()
        result = spa_core.prune(model, _native_input(key, example), ratio=ratio, criterion=cfg["criterion"])
        prune_s = time.perf_counter() - t1
        pruned_model = result.model
        acc_pruned = accuracy(fw, pruned_model, xte, yte)
        t2 = time.perf_counter()
        pruned_model = finetune(pruned_model, train_batches, framework=_fw_name(key), epochs=cfg["ft_epochs"],
                                lr=cfg["ft_lr"], max_batches=cfg["ft_max_batches"])
        ft_s = time.perf_counter() - t2
        rows.append(row(fw.name, ratio, base, acc_pruned, accuracy(fw, pruned_model, xte, yte),
                        result.report.to_dict(), prune_s, ft_s))
        print(f"{fw.name} ratio {ratio}: {rows[-1]}", file=sys.stderr)
    return rows


def _fw_name(key: str) -> str:
    return "jax" if key == "flax" else key


def _native_input(key: str, example: np.ndarray) -> Any:
    if key == "torch":
        import torch

        return torch.from_numpy(example)
    if key == "flax":
        import jax.numpy as jnp

        return jnp.asarray(example)
    return example


def run_mxnet(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The MXNet Gluon run, in MXNet's environment (see :mod:`mxnet_cnn`)."""
    from spa_mxnet.runner import mxnet_python

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "adapters"), str(REPO)])
    env.setdefault("OMP_NUM_THREADS", "2")
    env["SPA_MAIN_PYTHON"] = sys.executable
    with tempfile.TemporaryDirectory(prefix="spa-mx-repro-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps(cfg))
        proc = subprocess.run([str(mxnet_python()), str(Path(__file__).with_name("mxnet_cnn.py")), str(job)],
                              capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"the MXNet run failed:\n{proc.stderr[-3000:]}")
    rows = []
    for r in json.loads(proc.stdout.strip().splitlines()[-1])["rows"]:
        rows.append(row("MXNet Gluon", r["ratio"], r["acc_base"], r["acc_pruned"], r["acc_finetuned"], r,
                        r["prune_s"], r["finetune_s"]))
        print(f"MXNet ratio {r['ratio']}: {rows[-1]} (pruned MXNet vs pruned ONNX max |diff| "
              f"{r['verify_max_abs_diff']:.2g})", file=sys.stderr)
    return rows


def plot(ax: Any, rows: list[dict[str, Any]]) -> None:
    """Accuracy per framework: trained, pruned, fine-tuned, one bar group per (framework, ratio)."""
    labels = [f"{r['framework']}\n{r['ratio']:.0%}" for r in rows]
    pos = np.arange(len(rows))
    for k, (key, label) in enumerate((("acc_base", "trained"), ("acc_pruned", "pruned"),
                                      ("acc_finetuned", "pruned + fine-tuned"))):
        ax.bar(pos + (k - 1) * 0.27, [r[key] for r in rows], 0.27, label=label)
    ax.set_xticks(pos, labels, fontsize=7)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.12)
    ax.legend(fontsize=7, loc="upper center", ncol=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pipeline check (< 2 min), numbers meaningless")
    parser.add_argument("--frameworks", default="torch,keras,flax,mxnet")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    cfg = settings(args.quick)
    xtr, ytr = load_fashion_mnist("train", limit=cfg["train_limit"])
    xte, yte = load_fashion_mnist("test", limit=cfg["test_limit"])
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for key in args.frameworks.split(","):
        rows += run_mxnet(cfg) if key == "mxnet" else run_native(key, FRAMEWORKS[key], (xtr, ytr, xte, yte), cfg)
    notes = (
        f"Fashion-MNIST, {len(xtr)} training / {len(xte)} test images; {cfg['epochs']} epoch(s) of Adam "
        f"(lr {cfg['lr']}) before pruning, {cfg['ft_epochs']} epoch(s) (lr {cfg['ft_lr']}"
        f"{', ' + str(cfg['ft_max_batches']) + ' batches' if cfg['ft_max_batches'] else ''}) after. "
        f"SPA, criterion {cfg['criterion']}, `ratio` = fraction of each channel group removed; "
        f"parameters and MACs are SPA's counts on the exported ONNX. Each framework trains from its own "
        f"initialisation, so base accuracies differ slightly. Total {time.perf_counter() - t0:.0f} s."
    )
    write_results("any_framework_quick" if args.quick else "any_framework", rows, COLUMNS, plot, notes, args.out_dir)


if __name__ == "__main__":
    main()
