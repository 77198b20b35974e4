"""``spa prune --criterion obspa``: OBSPA from the command line (ONNX files).

OBSPA reads a target as the fraction of MACs to remove (``--target macs=50%`` keeps half
the MACs) or a channel ratio (``--ratio``); ``--data`` is calibration data (its ``x``
only), and without it the inputs are synthesised (``--synth``). Parameter budgets are not
an OBSPA target: its allocation ranks channels by their OBS error per MAC.
"""

from __future__ import annotations

import argparse
from typing import Any

import onnx

from ..errors import InvalidOptionError


def add_obspa_arguments(parser: argparse.ArgumentParser) -> None:
    """Add OBSPA's own options to ``spa prune``."""
    from .options import COMPENSATIONS, SYNTHESES

    g = parser.add_argument_group("OBSPA (--criterion obspa: no fine-tuning, data-free without --data)")
    g.add_argument("--synth", choices=SYNTHESES, default=SYNTHESES[0], help=f"data-free inputs (default {SYNTHESES[0]})")
    g.add_argument("--samples", type=int, default=None, help="synthetic inputs (default 128 for inversion, else 256)")
    g.add_argument("--damp", type=float, default=0.01, help="Hessian dampening, a multiple of its mean diagonal")
    g.add_argument("--allocation", choices=("global", "uniform"), default="global",
                   help="how many channels each group loses (default global)")
    g.add_argument("--compensation", choices=COMPENSATIONS, default=COMPENSATIONS[0],
                   help=f"how the kept weights are re-fitted (default {COMPENSATIONS[0]})")


def _macs_target(text: str, model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None) -> float:
    """The fraction of MACs to remove that ``--target macs=BUDGET`` asks for."""
    from ..workflows.targets import as_target

    target = as_target(text)
    if target.kind != "macs":
        raise InvalidOptionError(f"OBSPA takes a MACs target or a ratio, not a {target.kind} budget (--target macs=50%)")
    if target.value <= 1.0:
        return 1.0 - target.value
    from ..api import analyze_onnx
    from ..macs import count_macs

    graph = analyze_onnx(model, input_shapes).graph
    original, _ = count_macs(graph.model, lambda name: graph.shapes[name])
    return max(0.0, 1.0 - target.value / original)


def run_obspa(args: argparse.Namespace, model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None) -> Any:
    """Prune an ONNX ``model`` by OBSPA as ``args`` say; the :class:`~spa_core.api.PruneResult`."""
    from ..workflows.cli import load_arrays
    from .prune import prune_obspa

    if getattr(args, "steps", 1) > 1 or getattr(args, "finetune_data", None):
        raise InvalidOptionError("OBSPA prunes in one step and does not fine-tune: drop --steps/--finetune-data")
    kwargs: dict[str, Any] = {"ratio": args.ratio}
    if getattr(args, "target", None):
        from ..workflows.targets import as_target

        target = as_target(args.target)
        if target.kind == "ratio":
            kwargs["ratio"] = target.value
        else:
            kwargs = {"macs_target": _macs_target(args.target, model, input_shapes)}
    calibration = None
    if getattr(args, "data", None):
        x, _ = load_arrays(args.data)
        calibration = x
    return prune_obspa(
        model, calibration=calibration, synth=args.synth, samples=args.samples, damp=args.damp,
        allocation=args.allocation, compensation=args.compensation, max_ratio=min(args.max_ratio, 0.9), min_keep=args.min_keep,
        round_to=args.round_to, input_shapes=input_shapes, ignore=args.ignore, seed=args.seed,
        batch_size=getattr(args, "batch_size", None) or 64, progress=False if getattr(args, "quiet", False) else None,
        **kwargs,
    )
