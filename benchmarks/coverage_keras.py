"""Coverage of keras.applications: prune every architecture and check the result.

Each architecture is built with ``weights=None`` (nothing is downloaded) at a small input
size, its BatchNormalization statistics randomised (so a wrong binding shows), pruned at
``--ratio`` (0.3) with ``spa_core.prune``, and checked three ways:

* oracle: the pruned ONNX equals the original with the removed channels zeroed;
* keras==onnx: the rebuilt Keras model computes what the pruned ONNX computes (1e-4);
* the MACs reduction and the time taken.

Every architecture runs in its own subprocess (TensorFlow graphs pile up otherwise, and a
crash or a time-out then costs one row, not the table)::

    python benchmarks/coverage_keras.py                 # all 40
    python benchmarks/coverage_keras.py ResNet50 VGG16  # some
    python benchmarks/coverage_keras.py --markdown out.md --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Input side per architecture: 96 where allowed; the Inception family and Xception need
# at least 75/71, NASNet's stem reductions want a multiple of 32.
DEFAULT_SIZE = 96
SIZES = {"NASNetLarge": 96, "NASNetMobile": 96, "InceptionV3": 96, "InceptionResNetV2": 96, "Xception": 96}
CLASSES = 10


def architectures() -> list[str]:
    import keras

    return sorted(n for n in dir(keras.applications) if n[0].isupper())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:240]


def run_one(name: str, ratio: float) -> dict[str, Any]:
    """Build, prune and check one architecture (in this process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import onnxruntime as ort
    from spa_keras.zoo import randomize

    import spa_core
    from spa_core.testing import assert_oracle

    row: dict[str, Any] = {"model": name, "success": False, "oracle": False, "keras_onnx": None}
    size = SIZES.get(name, DEFAULT_SIZE)
    t0 = time.perf_counter()
    try:
        model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=CLASSES)
        randomize(model)
        x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
        row["params"] = int(model.count_params())
        t1 = time.perf_counter()
        res = spa_core.prune(model, x, ratio=ratio)
        row["seconds"] = round(time.perf_counter() - t1, 1)
        rep = res.report
        row["macs_reduction"] = round(1 - rep.macs_after / max(rep.macs_before, 1), 3)
        row["params_after"] = int(res.model.count_params())
        try:
            row["oracle_error"] = float(assert_oracle(res))
            row["oracle"] = True
        except AssertionError as exc:
            row["oracle_error_text"] = str(exc)
        feeds = {res.onnx.graph.input[0].name: x}
        onnx_out = ort.InferenceSession(res.onnx.SerializeToString()).run(None, feeds)[0]
        keras_out = np.asarray(res.model(x, training=False))
        err = float(np.max(np.abs(onnx_out - keras_out)) / max(1e-6, float(np.max(np.abs(onnx_out)))))
        row["keras_onnx"] = err
        row["success"] = err <= 1e-4
        if not row["success"]:
            row["reason"] = f"pruned Keras model differs from pruned ONNX (relative {err:.2g})"
        elif not row["oracle"]:
            row["reason"] = row["oracle_error_text"]
        row["barriers"] = dict(sorted(rep.barriers.items(), key=lambda kv: -kv[1])[:3])
        row["unknown_ops"] = dict(rep.unknown_operators)
    except Exception as exc:  # one row per failure, with the operator/pattern named
        row["reason"] = _first_line(exc)
        row.setdefault("seconds", round(time.perf_counter() - t0, 1))
    return row


def run_isolated(name: str, ratio: float, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", name, "--ratio", str(ratio)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "success": False, "oracle": False, "seconds": round(timeout), "reason": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": name, "success": False, "oracle": False, "seconds": round(time.perf_counter() - t0, 1), "reason": f"crashed: {tail[:200]}"}


def table(rows: list[dict[str, Any]]) -> str:
    head = "| model | success | oracle held | keras==onnx | MACs reduction | seconds | failure reason |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        ko = r.get("keras_onnx")
        macs = r.get("macs_reduction")
        lines.append(
            f"| {r['model']} | {'yes' if r['success'] else 'no'} | {'yes' if r['oracle'] else 'no'} | "
            f"{'-' if ko is None else f'{ko:.1e}'} | {'-' if macs is None else f'{macs:.1%}'} | "
            f"{r.get('seconds', '-')} | {r.get('reason', '')} |"
        )
    ok = sum(r["success"] and r["oracle"] for r in rows)
    lines.append(f"\n{ok} of {len(rows)} architectures pruned with the oracle held and Keras == ONNX.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="architecture names (default: all of keras.applications)")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per architecture")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.ratio)), flush=True)
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    names = args.models or architectures()
    rows = []
    for name in names:
        row = run_isolated(name, args.ratio, args.timeout)
        rows.append(row)
        status = "ok" if row["success"] and row["oracle"] else "FAIL"
        print(f"{name:20s} {status:4s} {row.get('seconds', '-')} s {row.get('reason', '')}", file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
