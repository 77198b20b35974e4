"""The ``spa`` command line: ``spa prune``, ``spa inspect``, ``spa criteria``.

Errors that are the user's to fix print one line (``spa: error: ...``) and exit 2;
nothing is written on failure (outputs are written atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import InvalidOptionError, SpaError

EXIT_USER_ERROR = 2


def parse_input_shapes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``NAME:1,3,224,224`` (or ``1,3,224,224`` for a single-input model)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in values:
        name, _, dims = text.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise InvalidOptionError(f"bad --input-shape '{text}': expected NAME:D0,D1,... with integers") from None
        if not shape:
            raise InvalidOptionError(f"bad --input-shape '{text}': no dimensions")
        shapes[name] = shape
    return shapes


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ratio must be a number, got '{text}'") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"ratio must be in [0, 1), got {value}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors print one line naming the problem (not the whole usage) and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="spa", description="Structurally Prune Anything")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    p = sub.add_parser("prune", help="prune a model")
    p.add_argument("model", help="model file (.onnx, or a framework's file with --framework)")
    p.add_argument("-o", "--output", required=True, help="where to write the pruned model")
    p.add_argument("--ratio", type=_ratio, default=0.5, help="fraction of channels removed per group (default 0.5)")
    p.add_argument("--criterion", default="l1", help="importance criterion (see `spa criteria`)")
    p.add_argument("--global", dest="global_ranking", action="store_true", help="rank all groups together")
    p.add_argument("--round-to", type=int, default=1, help="keep a multiple of N channels per group")
    p.add_argument("--min-keep", type=int, default=1, help="keep at least N channels per group")
    p.add_argument("--max-ratio", type=float, default=1.0, help="remove at most this fraction of a group")
    p.add_argument("--ignore", action="append", default=[], help="ONNX node or initializer name to leave alone")
    p.add_argument("--input-shape", action="append", default=[], help="NAME:D0,D1,... for dynamic inputs")
    p.add_argument("--plan-out", help="write the plan (JSON) here")
    p.add_argument("--framework", help="framework of MODEL (torch, keras, mxnet, onnx); guessed from the file")
    p.add_argument("--params", help="MXNet .params file (with a -symbol.json MODEL)")
    p.add_argument("--trust-pickle", action="store_true", help="allow loading whole-module pickles (runs code)")
    p.add_argument("--report", help="write an HTML report here")
    p.add_argument("--seed", type=int, default=0, help="seed of the random criterion")

    i = sub.add_parser("inspect", help="show channel groups and barriers")
    i.add_argument("model")
    i.add_argument("--input-shape", action="append", default=[])
    i.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("criteria", help="list installed importance criteria")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except SpaError as exc:
        print(f"spa: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("spa: interrupted; nothing was written", file=sys.stderr)
        return 130


def cmd_criteria(args: argparse.Namespace) -> int:
    from .criteria.base import available_criteria

    for name, crit in available_criteria().items():
        doc = (type(crit).__doc__ or "").strip().splitlines()
        needs = ",".join(sorted(crit.needs))
        print(f"{name:12s} needs: {needs:30s} {doc[0] if doc else ''}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .api import analyze_onnx
    from .inspect_view import analysis_table, analysis_to_dict

    analysis = analyze_onnx(_require_file(args.model), parse_input_shapes(args.input_shape) or None)
    if args.json:
        print(json.dumps(analysis_to_dict(analysis), indent=1))
    else:
        print(analysis_table(analysis))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .prune_command import run_prune

    return run_prune(args)


def _require_file(path: str) -> str:
    if not Path(path).is_file():
        raise InvalidOptionError(f"model file not found: {path}")
    return path


COMMANDS = {"prune": cmd_prune, "inspect": cmd_inspect, "criteria": cmd_criteria}

if __name__ == "__main__":
    sys.exit(main())
