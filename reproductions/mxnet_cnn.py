"""The small CNN of :mod:`framework_cnns` in MXNet Gluon: train, prune with SPA, fine-tune.

Runs in MXNet's own environment (``.venv-mxnet``; see ``adapters/spa_mxnet/README.md``),
started by ``any_framework.py`` with ``adapters/`` and the repository on ``PYTHONPATH``.
Pruning goes through :func:`spa_mxnet.gluon.prune_block`, which exports the block and
runs SPA in the main environment; the pruned ``SymbolBlock`` is fine-tuned here with a
plain Gluon loop (Adam, the same settings as the other frameworks' built-in loop).

Usage: ``.venv-mxnet/bin/python reproductions/mxnet_cnn.py JOB.json`` - prints one JSON
line ``{"rows": [...]}`` last.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn
from spa_mxnet.gluon import prune_block

from spa_core.datasets import load_fashion_mnist

WIDTHS = (16, 32, 64)
HIDDEN = 64
CLASSES = 10


def build(seed: int) -> nn.HybridSequential:
    """The CNN: conv-BN-ReLU x3 (max pools after the first two), global pool, two dense layers."""
    mx.random.seed(seed)
    np.random.seed(seed)
    net = nn.HybridSequential(prefix="cnn_")
    with net.name_scope():
        cin = 1
        for i, w in enumerate(WIDTHS):
            net.add(nn.Conv2D(w, 3, 1, 1, use_bias=False, in_channels=cin), nn.BatchNorm(in_channels=w),
                    nn.Activation("relu"))
            if i < len(WIDTHS) - 1:
                net.add(nn.MaxPool2D(2))
            cin = w
        net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(HIDDEN, activation="relu", in_units=cin),
                nn.Dense(CLASSES, in_units=HIDDEN))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    return net


def train(net: gluon.Block, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch: int, seed: int,
          max_batches: int | None = None) -> float:
    """Adam on softmax cross-entropy; returns seconds."""
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(x))
        for b, i in enumerate(range(0, len(x), batch)):
            if max_batches is not None and b >= max_batches:
                break
            idx = order[i : i + batch]
            xb, yb = mx.nd.array(x[idx]), mx.nd.array(y[idx])
            with autograd.record():
                loss = loss_fn(net(xb), yb)
            loss.backward()
            trainer.step(len(idx))
    mx.nd.waitall()
    return time.perf_counter() - t0


def accuracy(net: gluon.Block, x: np.ndarray, y: np.ndarray) -> float:
    correct = 0
    for i in range(0, len(x), 1000):
        out = net(mx.nd.array(x[i : i + 1000])).asnumpy()
        correct += int((out.argmax(1) == y[i : i + 1000]).sum())
    return correct / max(1, len(x))


def main(job: dict[str, Any]) -> list[dict[str, Any]]:
    xtr, ytr = load_fashion_mnist("train", limit=job["train_limit"])
    xte, yte = load_fashion_mnist("test", limit=job["test_limit"])
    ytr_f, lr, batch, seed = ytr.astype(np.float32), job["lr"], job["batch"], job["seed"]
    net = build(seed)
    net.hybridize()
    t_train = train(net, xtr, ytr_f, job["epochs"], lr, batch, seed)
    base_acc = accuracy(net, xte, yte)
    rows = []
    for ratio in job["ratios"]:
        t0 = time.perf_counter()
        pruned, summary = prune_block(net, (1, 1, 28, 28), ratio=ratio, criterion=job["criterion"])
        t_prune = time.perf_counter() - t0
        acc_pruned = accuracy(pruned, xte, yte)
        t_ft = train(pruned, xtr, ytr_f, job["ft_epochs"], job["ft_lr"], batch, seed + 100, job.get("ft_max_batches"))
        report = summary["report"]
        rows.append({
            "ratio": ratio, "acc_base": base_acc, "acc_pruned": acc_pruned, "acc_finetuned": accuracy(pruned, xte, yte),
            "params_before": report["params_before"], "params_after": report["params_after"],
            "macs_before": report["macs_before"], "macs_after": report["macs_after"],
            "train_s": t_train, "prune_s": t_prune, "finetune_s": t_ft,
            "verify_max_abs_diff": summary["verify_max_abs_diff"],
        })
    return rows


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        result = main(json.load(f))
    print(json.dumps({"rows": result}))
