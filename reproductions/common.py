"""Shared helpers of the reproduction scripts: Fashion-MNIST tensors, torch training and
evaluation, and one way to write results (Markdown table on stdout, ``.md``, ``.csv``, ``.png``).

Everything runs on CPU with the data that ships in Debian's ``dataset-fashion-mnist``
(see :mod:`spa_core.datasets`); nothing is downloaded.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from spa_core.datasets import load_fashion_mnist

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CACHE_DIR = Path(os.environ.get("SPA_REPRO_CACHE", Path.home() / ".cache" / "spa_reproductions"))
"""Trained models are cached here (outside the repository; ``$SPA_REPRO_CACHE`` overrides)."""

Row = dict[str, Any]


def set_threads(n: int = 1) -> None:
    """Limit torch's intra-op threads. On the shared 2-core machines one thread is much faster
    than two when other jobs are running (OpenMP threads spin against each other)."""
    torch.set_num_threads(n)


def fashion_mnist(
    train_limit: int | None = None, test_limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)`` as torch tensors; images ``(N, 1, 28, 28)`` in [0, 1]."""
    xtr, ytr = load_fashion_mnist("train", limit=train_limit)
    xte, yte = load_fashion_mnist("test", limit=test_limit)
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)


def batches(
    x: torch.Tensor, y: torch.Tensor, batch: int = 128, shuffle: bool = False, seed: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of ``(x, y)``; shuffled with a seeded generator when ``shuffle``."""
    n = len(x)
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    else:
        order = torch.arange(n)
    for i in range(0, n, batch):
        idx = order[i : i + batch]
        yield x[idx], y[idx]


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
) -> float:
    """Adam with a one-cycle schedule for ``epochs`` epochs; returns the seconds spent."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, epochs * ((len(x) + batch - 1) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        for xb, yb in batches(x, y, batch, shuffle=True, seed=seed + epoch):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return time.perf_counter() - t0


@torch.no_grad()
def evaluate(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             batch: int = 1000) -> float:
    """Top-1 accuracy in [0, 1] (the model is put in eval mode when it is a module)."""
    if isinstance(model, nn.Module):
        model.eval()
    correct = 0
    for xb, yb in batches(x, y, batch):
        correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(1, len(x))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``rows`` (dicts) restricted to ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def write_results(
    name: str,
    rows: Sequence[Row],
    columns: Sequence[str],
    plot_fn: Callable[[Any, Sequence[Row]], None] | None = None,
    notes: str = "",
    out_dir: Path | None = None,
) -> dict[str, Path]:
    """Print a Markdown table and write ``NAME.md``, ``NAME.csv`` and ``NAME.png``.

    :param name: file stem under ``out_dir`` (default ``reproductions/results``).
    :param rows: one dict per table row.
    :param columns: the columns, in order (also the CSV header).
    :param plot_fn: ``plot_fn(ax, rows)`` draws on a matplotlib axis; ``None`` draws nothing
        but the PNG is still written (a table rendered as text).
    :param notes: Markdown written below the table (setup, timings, conclusions).
    :returns: the paths written, keyed by ``"md"``, ``"csv"``, ``"png"``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir) if out_dir is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows, columns)
    print(table)
    if notes:
        print("\n" + notes)
    paths = {"md": out / f"{name}.md", "csv": out / f"{name}.csv", "png": out / f"{name}.png"}
    paths["md"].write_text(f"# {name}\n\n{table}\n\n{notes}\n".rstrip() + "\n")
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if plot_fn is not None:
        plot_fn(ax, rows)
    else:
        ax.axis("off")
        ax.text(0, 1, table, family="monospace", fontsize=7, va="top")
    ax.set_title(name)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=110)
    plt.close(fig)
    return paths


def seed_all(seed: int = 0) -> None:
    """Seed torch and numpy."""
    torch.manual_seed(seed)
    np.random.seed(seed)
