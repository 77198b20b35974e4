"""SPA adapter for MXNet 1.9 (Gluon / symbol + params files).

MXNet cannot share the main environment (it needs numpy < 1.24 and onnx < 1.19), so the
adapter is split by environment:

* main environment (``spa_core``, onnx 1.23): :mod:`spa_mxnet.plugin` (the pluggy hooks),
  :mod:`spa_mxnet.pipeline` (export, apply, :func:`cli_prune`), :mod:`spa_mxnet.runner`
  (runs the worker in MXNet's environment), :mod:`spa_mxnet.onnx_tidy`,
  :mod:`spa_mxnet.bindings`;
* MXNet's environment ``<repo>/.venv-mxnet`` (``bash scripts/setup_mxnet_env.sh``):
  :mod:`spa_mxnet.mx_worker` and the ``mx_*`` modules it calls, :mod:`spa_mxnet.zoo`,
  and :mod:`spa_mxnet.gluon` (``prune_block`` for Gluon users);
* both: :mod:`spa_mxnet.model` and :mod:`spa_mxnet.symbol_rules` (plain Python).

They talk through files: symbol JSON, ``.params``, ONNX, plan JSON and ``.npz``.
This ``__init__`` imports nothing from either side, so it loads in both.
"""

from __future__ import annotations

from typing import Any

from .model import MXNetModel

__all__ = ["MXNetModel", "cli_prune"]


def cli_prune(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Prune MXNet files end to end (main environment); see :func:`spa_mxnet.pipeline.cli_prune`."""
    from .pipeline import cli_prune as _cli_prune

    return _cli_prune(*args, **kwargs)
