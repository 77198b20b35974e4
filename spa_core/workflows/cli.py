"""Command-line pieces for the workflows, for ``spa prune`` to wire in.

:func:`add_workflow_arguments` adds the options; :func:`run_workflow` runs a pruning
with them and returns a :class:`~spa_core.api.PruneResult`::

    spa prune model.onnx -o small.onnx --criterion snip --data fashion-mnist:512 --target params=10%
    spa prune model.onnx -o small.onnx --criterion taylor --data calib.npz --steps 3 --target macs=50%
    spa prune model.pt -o small.pt --target ratio=0.6 --steps 2 --finetune-data train.npz --finetune-epochs 1

``--data`` is an ``.npz`` file with arrays ``x`` and ``y`` (or ``inputs``/``targets``), or
a named data set (:data:`DATASETS`: ``fashion-mnist[:N]``). Arrays are split into
batches of ``--batch-size``; ``--channels-last`` turns NCHW images into NHWC (Keras, Flax).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidOptionError
from ..gradients.calibration import Calibration

DEFAULT_BATCH = 32
DATASETS: dict[str, Callable[[int | None], tuple[np.ndarray, np.ndarray]]] = {}


def dataset(name: str) -> Callable[[Callable[[int | None], tuple[np.ndarray, np.ndarray]]], Any]:
    def register(fn: Callable[[int | None], tuple[np.ndarray, np.ndarray]]) -> Any:
        DATASETS[name] = fn
        return fn

    return register


@dataset("fashion-mnist")
def _fashion_mnist(limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from ..datasets import load_fashion_mnist

    return load_fashion_mnist("train", limit=limit)


def add_workflow_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the data, target, iterative and fine-tuning options to ``spa prune``."""
    g = parser.add_argument_group("data-driven criteria and workflows")
    g.add_argument("--data", help="calibration data: an .npz with x and y, or fashion-mnist[:N]")
    g.add_argument("--loss", default="cross_entropy", help="loss of the calibration data (cross_entropy, mse, pseudo_label)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="calibration/fine-tuning batch size (default 32; OBSPA: 64)")
    g.add_argument("--calibration-batches", type=int, default=4, help="calibration batches read (default 4)")
    g.add_argument("--hessian-samples", type=int, default=4, help="Hutchinson samples per batch for --criterion hessian")
    g.add_argument("--channels-last", action="store_true", help="feed images as NHWC (Keras, Flax)")
    g.add_argument("--target", help="ratio=R, macs=BUDGET or params=BUDGET (3.5M, 2e8, 50%%); overrides --ratio")
    g.add_argument("--steps", type=int, default=1, help="prune iteratively in N steps (default 1)")
    g.add_argument("--at-init", action="store_true",
                   help="the model is untrained (pruning at initialisation, e.g. --criterion snip): score with "
                        "every BatchNorm normalising by the calibration batch, as it will in training")
    g.add_argument("--finetune-data", help="fine-tune after each step on this data (.npz or a data set name)")
    g.add_argument("--finetune-epochs", type=int, default=1, help="fine-tuning epochs per step (default 1)")
    g.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate (default 1e-3)")


def load_arrays(spec: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from an ``.npz`` path or ``NAME[:N]`` of :data:`DATASETS`."""
    name, _, count = spec.partition(":")
    if name in DATASETS:
        try:
            limit = int(count) if count else None
        except ValueError:
            raise InvalidOptionError(f"bad data set size in '{spec}': expected {name}:N") from None
        return DATASETS[name](limit)
    path = Path(spec)
    if not path.is_file():
        raise InvalidOptionError(f"data not found: '{spec}' is neither a file nor one of {', '.join(DATASETS)}")
    with np.load(path) as arrays:
        for xk, yk in (("x", "y"), ("inputs", "targets")):
            if xk in arrays and yk in arrays:
                return arrays[xk], arrays[yk]
    raise InvalidOptionError(f"{path} must hold arrays 'x' and 'y' (or 'inputs' and 'targets')")


def batches(x: np.ndarray, y: np.ndarray, size: int, channels_last: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` cut into batches of ``size`` (NCHW -> NHWC when ``channels_last``)."""
    if size < 1:
        raise InvalidOptionError(f"--batch-size must be >= 1, got {size}")
    if channels_last and x.ndim == 4:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def calibration_from_args(args: argparse.Namespace) -> Calibration | None:
    """The :class:`Calibration` that ``--data`` and friends describe (``None`` without ``--data``)."""
    if not getattr(args, "data", None):
        if getattr(args, "at_init", False):
            raise InvalidOptionError("--at-init scores an untrained model on calibration data: pass --data")
        return None
    x, y = load_arrays(args.data)
    return Calibration(batches(x, y, args.batch_size or DEFAULT_BATCH, args.channels_last), args.loss,
                       args.calibration_batches, args.hessian_samples,
                       batch_statistics=getattr(args, "at_init", False))


def workflow_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``data``/``loss`` keywords for a plain :func:`spa_core.prune` / ``prune_onnx`` call."""
    calibration = calibration_from_args(args)
    return {} if calibration is None else {"data": calibration, "loss": args.loss}


def wants_workflow(args: argparse.Namespace) -> bool:
    """True when a target budget, steps or fine-tuning is asked for (else a plain prune will do)."""
    return bool(getattr(args, "target", None) or getattr(args, "steps", 1) > 1 or getattr(args, "finetune_data", None))


def run_workflow(
    args: argparse.Namespace, model: Any, *, framework: str | None = None, example_inputs: Any = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None, export_options: dict[str, Any] | None = None,
) -> Any:
    """Prune ``model`` as ``args`` say and return the :class:`~spa_core.api.PruneResult`."""
    from .iterative import iterative_prune, prune_then_finetune

    target = args.target or f"ratio={args.ratio}"
    options = dict(
        criterion=args.criterion, data=calibration_from_args(args), loss=args.loss, steps=args.steps,
        framework=framework, export_options=export_options, input_shapes=input_shapes or None,
        global_ranking=args.global_ranking, round_to=args.round_to, min_keep=args.min_keep,
        max_ratio=args.max_ratio, ignore=args.ignore, seed=args.seed,
        reduce=args.reduce, normalize=args.normalize,
    )
    if args.finetune_data:
        x, y = load_arrays(args.finetune_data)
        train = batches(x, y, args.batch_size or DEFAULT_BATCH, args.channels_last)
        done = prune_then_finetune(model, example_inputs, target=target, train_data=train,
                                   epochs=args.finetune_epochs, lr=args.lr, **options)
    else:
        done = iterative_prune(model, example_inputs, target=target, **options)
    done.result.extras["workflow_steps"] = [vars(s) for s in done.steps]
    return done.result
