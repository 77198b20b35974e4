"""``spa prune``: load a model of any framework, prune it, write outputs atomically."""

from __future__ import annotations

import argparse
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


def run_prune(args: argparse.Namespace) -> int:
    from .api import prune_onnx
    from .io import save_model
    from .plugins import plugin_manager

    (framework, model), options = _load(args)
    kwargs = dict(
        ratio=args.ratio, criterion=args.criterion, global_ranking=args.global_ranking,
        round_to=args.round_to, min_keep=args.min_keep, max_ratio=args.max_ratio,
        ignore=args.ignore, seed=args.seed,
    )
    output = Path(args.output)
    if framework == "onnx":
        result = prune_onnx(model, input_shapes=options["input_shapes"] or None, **kwargs)
        save_model(result.onnx, output)
    else:
        from .api import prune

        example = options.get("example_inputs")
        shapes = options["input_shapes"]
        result = prune(model, example, framework=framework, export_options={"input_shapes": shapes, **options}, **kwargs)
        hook = plugin_manager().hook
        if not hook.spa_save_model(model=result.model, path=str(output), framework=framework, options=options):
            raise FrameworkError(f"no installed SPA adapter saves '{framework}' models")
        save_model(result.onnx, output.with_suffix(".onnx") if output.suffix != ".onnx" else output.with_name(output.stem + ".pruned.onnx"))
    if args.plan_out:
        result.plan.save(args.plan_out)
    if args.report:
        from .html_report import write_report

        write_report(args.report, result, command=" ".join(["spa", "prune", args.model, "-o", args.output]))
    if not args.quiet:
        print(f"pruned {args.model} -> {output}")
        print(result.report.summary())
    return 0
