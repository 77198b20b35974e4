"""Prune a Gluon block from MXNet's environment: :func:`prune_block`.

Usage (in ``.venv-mxnet``, with ``adapters/`` importable: the setup script adds it)::

    from spa_mxnet.gluon import prune_block
    pruned, summary = prune_block(net, (1, 3, 32, 32), ratio=0.5, criterion="l1")
    pruned(x)                      # a gluon.SymbolBlock with the pruned weights
    # keep the files too: prune_block(..., out_prefix="pruned") writes
    # pruned-symbol.json, pruned-0000.params, pruned.onnx, pruned.plan.json

The block is hybridized and exported; the pruning itself runs in the main environment
(``$SPA_MAIN_PYTHON``, else ``<repo>/.venv/bin/python``) through
``python -m spa_mxnet prune``, which calls back into this environment for the MXNet
steps. The returned block is built from the pruned files; fine-tune it like any other.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import mxnet as mx
from mxnet import gluon

from .model import PARAMS_SUFFIX, SYMBOL_SUFFIX
from .mx_common import bare, data_inputs, load_params, load_symbol

REPO_DIR = Path(__file__).resolve().parent.parent.parent


class PruneError(RuntimeError):
    """Pruning failed; the message is the main environment's one-sentence error."""


def main_python() -> str:
    """The main environment's interpreter (``$SPA_MAIN_PYTHON`` or ``<repo>/.venv/bin/python``)."""
    path = os.environ.get("SPA_MAIN_PYTHON") or str(REPO_DIR / ".venv" / "bin" / "python")
    if not Path(path).is_file():
        raise PruneError(f"SPA's main environment is not at {path}; set SPA_MAIN_PYTHON to its python")
    return path


def prune_files(
    symbol: str, params: str, out_prefix: str, input_shape: tuple[int, ...],
    ratio: float = 0.5, criterion: str = "l1",
) -> dict[str, Any]:
    """Prune exported files with the main environment; return its summary."""
    shape = ",".join(str(int(d)) for d in input_shape)
    cmd = [main_python(), "-m", "spa_mxnet", "prune", symbol, "--params", params, "-o", out_prefix,
           "--ratio", str(ratio), "--criterion", criterion, "--input-shape", shape]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_DIR / "adapters"), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise PruneError(lines[-1].removeprefix("error: ") if lines else f"exit status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_block(prefix: str) -> gluon.SymbolBlock:
    """A SymbolBlock from ``PREFIX-symbol.json``/``PREFIX-0000.params``."""
    symbol, params = prefix + SYMBOL_SUFFIX, prefix + PARAMS_SUFFIX
    names = data_inputs(load_symbol(symbol), {bare(k) for k in load_params(params)})
    return gluon.SymbolBlock.imports(symbol, names, params, ctx=mx.cpu())


def prune_block(
    net: gluon.HybridBlock,
    input_shape: tuple[int, ...],
    ratio: float = 0.5,
    criterion: str = "l1",
    out_prefix: str | None = None,
) -> tuple[gluon.SymbolBlock, dict[str, Any]]:
    """Structurally prune ``net`` (one data input of ``input_shape``); ``net`` is not modified.

    :return: the pruned network as a ``SymbolBlock`` and the pruning summary.
    """
    with tempfile.TemporaryDirectory(prefix="spa-gluon-") as tmp:
        net.hybridize()
        net(mx.nd.zeros(input_shape))
        prefix = os.path.join(tmp, "model")
        net.export(prefix, epoch=0)
        out = out_prefix or os.path.join(tmp, "pruned")
        summary = prune_files(prefix + SYMBOL_SUFFIX, prefix + PARAMS_SUFFIX, out, input_shape, ratio, criterion)
        return load_block(out), summary
