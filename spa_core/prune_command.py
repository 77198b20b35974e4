"""``spa prune``: load a model of any framework, prune it, write outputs atomically."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .cli import parse_input_shapes
from .errors import FrameworkError, InvalidOptionError


def _load(args: argparse.Namespace):
    from .plugins import plugin_manager

    path = Path(args.model)
    if not path.exists():
        raise InvalidOptionError(f"model file not found: {path}")
    options = {"params": args.params, "trust_pickle": args.trust_pickle,
               "input_shapes": parse_input_shapes(args.input_shape)}
    loaded = plugin_manager().hook.spa_load_model(path=str(path), framework=args.framework, options=options)
    if loaded is None:
        what = f"--framework {args.framework}" if args.framework else f"a '{path.suffix}' file"
        raise FrameworkError(f"no installed SPA adapter can read {what} ({path})")
    return loaded, options


def _steps(args: argparse.Namespace, single: bool = False) -> list[str]:
    """The steps ``spa prune`` will show (an ONNX file is analysed as a step of its own,
    unless the pruning is one ``single`` step: OBSPA or a workflow)."""
    onnx_file = (args.framework or "onnx") == "onnx" and Path(args.model).suffix == ".onnx"
    if single:
        names = ["load", "prune"]
    else:
        names = ["load", "analyse", "score + prune", "validate"] if onnx_file else ["load", "export + prune"]
    return names + (["report"] if args.report else []) + ["save"]


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (``spa prune model.onnx -o out.onnx ...``)."""
    argv = getattr(args, "argv", None)
    if not argv:
        argv = [args.command, *(v for k, v in vars(args).items() if k in ("plan", "original", "pruned", "model"))]
    return shlex.join(["spa", *map(str, argv)])


def run_prune(args: argparse.Namespace) -> int:
    from . import progress
    from .api import analyze_onnx, prune_onnx
    from .io import atomic_write_text, save_model
    from .plugins import plugin_manager
    from .surgery import check_model
    from .workflows.cli import run_workflow, wants_workflow, workflow_kwargs

    kwargs = dict(
        ratio=args.ratio, criterion=args.criterion, global_ranking=args.global_ranking,
        round_to=args.round_to, min_keep=args.min_keep, max_ratio=args.max_ratio,
        ignore=args.ignore, seed=args.seed, reduce=args.reduce, normalize=args.normalize,
    )
    output = Path(args.output)
    obspa = args.criterion == "obspa"
    workflow = not obspa and wants_workflow(args)
    with progress.steps(_steps(args, workflow or obspa), desc="spa prune") as run:
        with run.step("load"):
            (framework, model), options = _load(args)
        shapes = options["input_shapes"] or None
        if obspa:
            if framework != "onnx":
                raise InvalidOptionError("--criterion obspa prunes ONNX files: export the model to ONNX first")
            from .obspa.command import run_obspa

            with run.step("prune"):
                result = run_obspa(args, model, shapes)
        elif workflow:
            example = options.get("example_inputs")
            export = None if framework == "onnx" else dict(options)
            with run.step("prune"):
                result = run_workflow(args, model, framework=framework, example_inputs=example,
                                      input_shapes=shapes, export_options=export)
        elif framework == "onnx":
            kwargs.update(workflow_kwargs(args))
            with run.step("analyse"):
                analysis = analyze_onnx(model, shapes, args.ignore)
            with run.step("score + prune"):
                result = prune_onnx(model, input_shapes=shapes, analysis=analysis, validate=False, **kwargs)
            with run.step("validate"):
                check_model(result.onnx, result.original_onnx)
            result.report.timings.update(analyse=run.timings["analyse"], validate=run.timings["validate"])
        else:
            from .api import prune

            kwargs.update(workflow_kwargs(args))
            example = options.get("example_inputs")
            with run.step("export + prune"):
                result = prune(model, example, framework=framework, export_options=dict(options), **kwargs)
        report_html = None
        if args.report:  # rendered before anything is written: a failure leaves no output
            from .html_report import render_report

            with run.step("report"):
                report_html = render_report(result, command=command_line(args), title=Path(args.model).name)
        with run.step("save"):
            if framework == "onnx":
                save_model(result.onnx, output)
            else:
                hook = plugin_manager().hook
                if not hook.spa_save_model(model=result.model, path=str(output), framework=framework, options=options):
                    raise FrameworkError(f"no installed SPA adapter saves '{framework}' models")
                save_model(result.onnx, output.with_suffix(".onnx") if output.suffix != ".onnx" else output.with_name(output.stem + ".pruned.onnx"))
            if args.plan_out:
                result.plan.save(args.plan_out)
            if report_html is not None:
                atomic_write_text(args.report, report_html)
    if not args.quiet:
        print(f"pruned {args.model} -> {output}")
        print(result.report.summary())
        steps = result.extras.get("workflow_steps", ())
        for step in steps if len(steps) > 1 else ():  # the channel count above is the last step's
            print(f"step {step['step']}: ratio {step['ratio']:.3f} -> parameters {step['params']:,}, MACs {step['macs']:,}")
        for where in result.extras.get("auto_ignored", ()):
            print(f"left unpruned (its forward() hard-codes a width): {where}")
        if args.report:
            print(f"report: {args.report}")
    return 0
