"""``python -m spa_mxnet prune SYMBOL [--params P] -o OUT ...`` (main environment).

The same as ``spa prune SYMBOL --params P --framework mxnet -o OUT``; it exists so that
:func:`spa_mxnet.gluon.prune_block`, running in MXNet's environment, has a stable
command to call in the main one. Prints the summary as JSON on stdout; a user error is
one sentence on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spa_mxnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prune = sub.add_parser("prune", help="prune MXNet symbol + params files")
    prune.add_argument("symbol", help="PREFIX-symbol.json")
    prune.add_argument("--params", default=None, help="PREFIX-0000.params (default: beside the symbol)")
    prune.add_argument("-o", "--output", required=True, help="output prefix")
    prune.add_argument("--ratio", type=float, default=0.5)
    prune.add_argument("--criterion", default="l1")
    prune.add_argument("--input-shape", required=True, help="1,3,224,224 or data=1,3,224,224;other=...")
    prune.add_argument("--no-verify", action="store_true", help="skip the MXNet vs ONNX check")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spa_core.errors import SpaError

    from .pipeline import cli_prune

    try:
        summary = cli_prune(args.symbol, args.params, args.output, ratio=args.ratio,
                            criterion=args.criterion, input_shape=args.input_shape,
                            verify=not args.no_verify)
    except SpaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
