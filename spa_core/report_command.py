"""``spa report PLAN ORIGINAL PRUNED``: the HTML report of a pruning, after the fact.

ORIGINAL is analysed again and the plan re-applied to it (which checks that the plan
was made for this model); the report shows the plan's scores and options, and PRUNED's
measured size and latency. PRUNED must be ORIGINAL pruned by PLAN: every parameter the
two share must have the shape the plan gives it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx

from .cli import parse_input_shapes
from .errors import InvalidModelError, InvalidOptionError


def default_output(pruned: str | Path) -> Path:
    """``pruned.onnx`` -> ``pruned.report.html`` beside it."""
    path = Path(pruned)
    return path.with_name(path.stem + ".report.html")


def check_same_pruning(expected: onnx.ModelProto, pruned: onnx.ModelProto, pruned_path: str) -> None:
    """Fail unless ``pruned``'s parameters have the shapes ``expected`` gives them."""
    want = {t.name: list(t.dims) for t in expected.graph.initializer}
    have = {t.name: list(t.dims) for t in pruned.graph.initializer}
    shared = [n for n in want if n in have]
    if not shared:
        raise InvalidModelError(f"{pruned_path} shares no parameter names with the original model")
    for name in shared:
        if want[name] != have[name]:
            raise InvalidModelError(
                f"{pruned_path} is not the original pruned by this plan: '{name}' has shape "
                f"{have[name]} there, the plan gives {want[name]}"
            )


def run_report(args: argparse.Namespace) -> int:
    from . import progress
    from .api import apply_plan_onnx
    from .html_report import render_report
    from .io import atomic_write_text, load_model
    from .plan import Plan
    from .prune_command import command_line

    for label, path in (("plan", args.plan), ("original model", args.original), ("pruned model", args.pruned)):
        if not Path(path).is_file():
            raise InvalidOptionError(f"{label} file not found: {path}")
    output = Path(args.output) if args.output else default_output(args.pruned)
    with progress.steps(["load", "analyse + apply plan", "measure", "save"], desc="spa report") as run:
        with run.step("load"):
            plan = Plan.load(args.plan)
            pruned = load_model(args.pruned)
        with run.step("analyse + apply plan"):
            result = apply_plan_onnx(args.original, plan, parse_input_shapes(args.input_shape) or None)
        check_same_pruning(result.onnx, pruned, args.pruned)
        result.report.timings = {"analyse + apply plan": run.timings["analyse + apply plan"]}
        with run.step("measure"):
            html = render_report(result, command=command_line(args), plan=plan, pruned=pruned,
                                 title=Path(args.original).name)
        with run.step("save"):
            atomic_write_text(output, html)
    if not args.quiet:
        print(f"report: {output}")
    return 0
