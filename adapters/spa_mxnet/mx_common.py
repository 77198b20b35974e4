"""Helpers for the MXNet-side modules (MXNet's environment only: mxnet, numpy < 1.24).

Loading a symbol with its parameters, telling data inputs from parameters, and writing
files atomically. Nothing here imports ``spa_core`` (it cannot run in this environment).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np

from .model import normalise_shapes


class WorkerError(Exception):
    """A failure the user can act on; the worker prints its one sentence and exits 2.

    ``kind`` picks the main environment's error class: ``"model"`` (a bad file or plan:
    InvalidModelError), ``"option"`` (InvalidOptionError), ``"framework"`` (FrameworkError).
    """

    def __init__(self, message: str, kind: str = "framework") -> None:
        super().__init__(message)
        self.kind = kind


def load_params(params_path: str) -> dict[str, mx.nd.NDArray]:
    """Parameters by file key (``arg:name``/``aux:name``, or plain names)."""
    if not Path(params_path).is_file():
        raise WorkerError(f"MXNet parameter file not found: {params_path}", "model")
    try:
        loaded = mx.nd.load(params_path)
    except mx.base.MXNetError as exc:
        raise WorkerError(f"{params_path} is not an MXNet parameter file ({_first_line(exc)})", "model") from None
    if not isinstance(loaded, dict):
        raise WorkerError(f"{params_path} holds an unnamed NDArray list, not named parameters", "model")
    return loaded


def load_symbol(symbol_path: str) -> mx.sym.Symbol:
    if not Path(symbol_path).is_file():
        raise WorkerError(f"MXNet symbol file not found: {symbol_path}", "model")
    try:
        return mx.sym.load(symbol_path)
    except mx.base.MXNetError as exc:
        raise WorkerError(f"{symbol_path} is not an MXNet symbol JSON ({_first_line(exc)})", "model") from None


def bare(key: str) -> str:
    """``arg:conv0_weight`` -> ``conv0_weight``."""
    return key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key


def data_inputs(sym: mx.sym.Symbol, param_names: set[str]) -> list[str]:
    """The symbol's inputs that are not parameters (nor a training label), in input order."""
    internals = sym.get_internals()
    label = internals[len(internals) - 1].name + "_label"
    return [n for n in sym.list_inputs() if n not in param_names and n != label]


def input_shapes(sym: mx.sym.Symbol, params: dict[str, Any], given: Any) -> dict[str, list[int]]:
    """Static shapes of the data inputs, by name (WorkerError when one is missing)."""
    names = data_inputs(sym, {bare(k) for k in params})
    try:
        return normalise_shapes(given, names)
    except ValueError as exc:
        raise WorkerError(str(exc), "option") from None


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def forward(
    symbol_path: str, params_path: str, feeds: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """Run the network in inference mode on ``feeds`` (data input name -> array)."""
    sym = load_symbol(symbol_path)
    params = load_params(params_path)
    names = data_inputs(sym, {bare(k) for k in params})
    missing = [n for n in names if n not in feeds]
    if missing:
        raise WorkerError(f"no value given for MXNet input {missing[0]!r}", "option")
    args = {bare(k): v for k, v in params.items() if not k.startswith("aux:")}
    aux_names = set(sym.list_auxiliary_states())
    aux = {bare(k): v for k, v in params.items() if bare(k) in aux_names}
    args = {k: v for k, v in args.items() if k not in aux_names}
    args.update({n: mx.nd.array(feeds[n], dtype=feeds[n].dtype) for n in names})
    executor = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
    outputs = executor.forward(is_train=False)
    return [o.asnumpy() for o in outputs]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def mxnet_error_line(exc: BaseException) -> str:
    """The informative line of an MXNetError (its C++ traceback stripped)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "MXNetError:" in line:
            return line.split("MXNetError:", 1)[1].strip()
    return lines[0] if lines else type(exc).__name__
