"""The ``spa`` command line: ``spa prune``, ``spa inspect``, ``spa report``, ``spa criteria``.

Errors that are the user's to fix print one line (``spa: error: ...``) and exit 2;
nothing is written on failure (outputs are written atomically). Slow steps show
progress bars on stderr when it is a terminal (``--quiet`` turns them off);
``--verbose`` logs debugging detail (step timings, tracebacks of errors).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import InvalidOptionError, SpaError

EXIT_USER_ERROR = 2
SPA_LOGGERS = ("spa_core", "spa_torch", "spa_keras", "spa_jax", "spa_mxnet")

log = logging.getLogger(__name__)


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
    # the same flags after the subcommand (``spa prune ... -q``); SUPPRESS keeps the
    # top-level value when they are not given there
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    from .importance import NORMALISATIONS, REDUCTIONS

    p = sub.add_parser("prune", help="prune a model", parents=[common])
    p.add_argument("model", help="model file (.onnx, or a framework's file with --framework)")
    p.add_argument("-o", "--output", required=True, help="where to write the pruned model")
    p.add_argument("--ratio", type=_ratio, default=0.5, help="fraction of channels removed per group (default 0.5)")
    p.add_argument("--criterion", default="l1", help="importance criterion (see `spa criteria`)")
    p.add_argument("--global", dest="global_ranking", action="store_true", help="rank all groups together")
    p.add_argument("--round-to", type=int, default=1, help="keep a multiple of N channels per group")
    p.add_argument("--min-keep", type=int, default=1, help="keep at least N channels per group")
    p.add_argument("--max-ratio", type=float, default=1.0, help="remove at most this fraction of a group")
    p.add_argument("--reduce", choices=sorted(REDUCTIONS), default="mean",
                   help="how a channel's scores in a group's members are combined (default mean)")
    p.add_argument("--normalize", choices=sorted(NORMALISATIONS), default="mean",
                   help="per-group normalisation before --global ranking (default mean; params: score "
                        "per parameter the channel carries)")
    p.add_argument("--ignore", action="append", default=[], help="ONNX node or initializer name to leave alone")
    p.add_argument("--input-shape", action="append", default=[], help="NAME:D0,D1,... for dynamic inputs")
    p.add_argument("--plan-out", help="write the plan (JSON) here")
    p.add_argument("--framework", help="framework of MODEL (torch, keras, mxnet, onnx); guessed from the file")
    p.add_argument("--params", help="MXNet .params file (with a -symbol.json MODEL)")
    p.add_argument("--trust-pickle", action="store_true", help="allow loading whole-module pickles (runs code)")
    p.add_argument("--report", help="write an HTML report here")
    p.add_argument("--seed", type=int, default=0, help="seed of the random criterion")
    from .obspa.command import add_obspa_arguments
    from .workflows.cli import add_workflow_arguments

    add_workflow_arguments(p)
    add_obspa_arguments(p)

    i = sub.add_parser("inspect", help="show channel groups and barriers", parents=[common])
    i.add_argument("model")
    i.add_argument("--input-shape", action="append", default=[])
    i.add_argument("--json", action="store_true", help="machine-readable output")

    r = sub.add_parser("report", help="write an HTML report of a pruning from its plan", parents=[common])
    r.add_argument("plan", help="the plan JSON (spa prune --plan-out)")
    r.add_argument("original", help="the unpruned ONNX model the plan was made for")
    r.add_argument("pruned", help="the pruned ONNX model (its latency and size are measured)")
    r.add_argument("-o", "--output", help="where to write the report (default: PRUNED with .report.html)")
    r.add_argument("--input-shape", action="append", default=[], help="NAME:D0,D1,... (default: the plan's)")

    sub.add_parser("criteria", help="list installed importance criteria", parents=[common])
    return parser


def _configure_output(args: argparse.Namespace) -> None:
    from . import progress

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        for name in SPA_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
    progress.configure(quiet=True if args.quiet else None)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: as an exception, so that ``finally`` blocks remove
    temporary files (the default action kills the process before they can)."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``spa`` command; SIGTERM is handled like Ctrl-C while it runs."""
    if threading.current_thread() is not threading.main_thread():
        return _run(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: Sequence[str] | None) -> int:
    from . import progress

    try:  # parsing imports the commands' option modules: an interrupt can land there too
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        _configure_output(args)
        redirect = contextlib.nullcontext()
        if progress.enabled():  # log lines printed above the bars, not through them
            from tqdm.contrib.logging import logging_redirect_tqdm

            redirect = logging_redirect_tqdm()
        with redirect:
            return COMMANDS[args.command](args)
    except SpaError as exc:
        log.debug("error", exc_info=exc)
        print(f"spa: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # an output folder that cannot be written, a full disk...
        log.debug("error", exc_info=exc)
        print(f"spa: error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, Exception) as exc:  # an interrupt inside a C extension's import
        if not _caused_by_interrupt(exc):          # comes back as that extension's ImportError
            raise
        print("spa: interrupted; nothing was written", file=sys.stderr)
        return 130


def _caused_by_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` was raised while handling (or because of) a KeyboardInterrupt."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def cmd_criteria(args: argparse.Namespace) -> int:
    from .criteria.base import available_criteria

    for name, crit in available_criteria().items():
        doc = (type(crit).__doc__ or "").strip().splitlines()
        needs = ",".join(sorted(crit.needs))
        print(f"{name:12s} needs: {needs:30s} {doc[0] if doc else ''}")
    print(f"{'obspa':12s} needs: {'weights (data optional)':30s} Optimal Brain SPA: no fine-tuning, "
          "data-free by default (ONNX files; see --synth)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import progress
    from .api import analyze_onnx
    from .inspect_view import analysis_table, analysis_to_dict

    with progress.steps(["analyse"], desc="spa inspect") as run, run.step("analyse"):
        analysis = analyze_onnx(_require_file(args.model), parse_input_shapes(args.input_shape) or None)
    if args.json:
        print(json.dumps(analysis_to_dict(analysis), indent=1))
    else:
        print(analysis_table(analysis))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .prune_command import run_prune

    return run_prune(args)


def cmd_report(args: argparse.Namespace) -> int:
    from .report_command import run_report

    return run_report(args)


def _require_file(path: str) -> str:
    if not Path(path).is_file():
        raise InvalidOptionError(f"model file not found: {path}")
    return path


COMMANDS = {"prune": cmd_prune, "inspect": cmd_inspect, "report": cmd_report, "criteria": cmd_criteria}

if __name__ == "__main__":
    sys.exit(main())
