"""Command-line worker run in MXNet's environment: ``python -m spa_mxnet.mx_worker CMD JOB.json``.

The main environment writes a job (JSON) and reads back a result (JSON, at
``job["result"]``). Commands, kept in ``COMMANDS``:

* ``export``: symbol + params -> ONNX (see :mod:`spa_mxnet.mx_export`);
* ``apply``: slice parameters by a plan, rewrite the symbol (:mod:`spa_mxnet.mx_apply`);
* ``run``: forward pass on inputs from an ``.npz``, outputs to an ``.npz``;
* ``build``: write an example network of :mod:`spa_mxnet.zoo` (tests, docs).

A user-actionable failure (a WorkerError, or an MXNetError such as a shape mismatch)
prints one line, ``spa-mxnet-error[KIND]: <sentence>``, on stderr and exits 2 (KIND:
``model``, ``option`` or ``framework``, see ``WorkerError``); anything else is a bug and exits 1 with a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ERROR_TAG = "spa-mxnet-error"


def _export(job: dict[str, Any]) -> dict[str, Any]:
    from .mx_export import export

    return export(job)


def _apply(job: dict[str, Any]) -> dict[str, Any]:
    from .mx_apply import apply

    return apply(job)


def _run(job: dict[str, Any]) -> dict[str, Any]:
    from .mx_common import forward

    with np.load(job["inputs"]) as data:
        feeds = {k: data[k] for k in data.files}
    outputs = forward(job["symbol"], job["params"], feeds)
    np.savez(job["outputs"], **{f"out_{i}": o for i, o in enumerate(outputs)})
    return {"outputs": len(outputs)}


def _build(job: dict[str, Any]) -> dict[str, Any]:
    from .zoo import build

    return build(job["name"], job["prefix"], tuple(job["input_shape"]), int(job.get("seed", 0)))


COMMANDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "export": _export,
    "apply": _apply,
    "run": _run,
    "build": _build,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in COMMANDS:
        print(f"{ERROR_TAG}[option]: usage: mx_worker {{{','.join(COMMANDS)}}} JOB.json", file=sys.stderr)
        return 2
    from mxnet.base import MXNetError

    from .mx_common import WorkerError, mxnet_error_line

    job = json.loads(Path(args[1]).read_text())
    try:
        result = COMMANDS[args[0]](job)
    except WorkerError as exc:
        print(f"{ERROR_TAG}[{exc.kind}]: {exc}", file=sys.stderr)
        return 2
    except MXNetError as exc:
        print(f"{ERROR_TAG}[framework]: MXNet failed ({args[0]}): {mxnet_error_line(exc)}", file=sys.stderr)
        return 2
    Path(job["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
