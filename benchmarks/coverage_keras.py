"""Coverage of keras.applications: prune every architecture and check the result.

Each architecture is built with ``weights=None`` (nothing is downloaded) and a logits head
(``classifier_activation=None``: a saturated softmax would hide errors) at a small input
size, its BatchNormalization statistics randomised (so a wrong binding shows), pruned at
``--ratio`` (0.3) with ``spa_core.prune``, and checked three ways:

* oracle: the pruned ONNX equals the original with the removed channels zeroed;
* keras==onnx: the rebuilt Keras model computes what the pruned ONNX computes (1e-4);
* the MACs reduction and the time taken.

Three random networks (``CHAOTIC``) amplify float32 rounding beyond 1e-4 in Keras itself;
they are checked in float64 (``float64_checks``), their rows say so: the oracle and
Keras == ONNX at 1e-4, the export within what float32 rounding of its weights causes.

Every architecture runs in its own subprocess (TensorFlow graphs pile up otherwise, and a
crash or a time-out then costs one row, not the table)::

    python benchmarks/coverage_keras.py                 # all 40, smallest first
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

# Input side per architecture: 32, the smallest keras.applications accepts, except the
# Inception family (at least 75) and Xception (at least 71). Small inputs keep the CPU
# time of the checks low; pruning does not depend on the spatial size.
DEFAULT_SIZE = 32
SIZES = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
CLASSES = 10
# Rough parameter counts (millions, 10 classes): architectures run smallest first, so a
# time-limited run covers as many as it can.
APPROX_MPARAMS = {
    "MobileNetV3Small": 1, "MobileNetV3Large": 3, "MobileNet": 3, "MobileNetV2": 2, "NASNetMobile": 4,
    "EfficientNetB0": 4, "EfficientNetV2B0": 6, "EfficientNetB1": 7, "EfficientNetV2B1": 7,
    "EfficientNetB2": 8, "EfficientNetV2B2": 9, "EfficientNetB3": 11, "EfficientNetV2B3": 13,
    "DenseNet121": 7, "DenseNet169": 13, "DenseNet201": 18, "Xception": 21, "InceptionV3": 22,
    "ResNet50": 24, "ResNet50V2": 24, "EfficientNetB4": 18, "EfficientNetV2S": 20, "ConvNeXtTiny": 28,
    "EfficientNetB5": 28, "ResNet101": 43, "ResNet101V2": 43, "ConvNeXtSmall": 50, "InceptionResNetV2": 54,
    "ResNet152": 58, "ResNet152V2": 58, "EfficientNetV2M": 53, "EfficientNetB6": 41, "EfficientNetB7": 64,
    "ConvNeXtBase": 88, "NASNetLarge": 85, "EfficientNetV2L": 118, "VGG16": 34, "VGG19": 39,
    "ConvNeXtLarge": 196, "ConvNeXtXLarge": 348,
}


def architectures() -> list[str]:
    """Every keras.applications architecture, smallest first."""
    import keras

    names = sorted(n for n in dir(keras.applications) if n[0].isupper())
    return sorted(names, key=lambda n: APPROX_MPARAMS.get(n, 100))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:240]


# Networks whose random version is numerically chaotic. Their BatchNorm statistics are
# calibrated on the input (see calibrate_batchnorm); without that, Keras float32 and float64
# differ by tens of percent. Calibrated, Keras float32 still differs from Keras float64 by
# 8e-4 on EfficientNetV2M (ONNX float32 by 2.7e-4), so float32 checks at 1e-4 measure
# rounding, not pruning: these networks are checked in float64 instead (float64_checks).
# EfficientNetV2S with seeded random kernels reaches outputs of 2.6e3 uncalibrated.
CHAOTIC = {"EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L"}


def _relative(got: Any, expected: Any) -> float:
    import numpy as np

    expected = np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - expected)) / max(1e-12, float(np.max(np.abs(expected)))))


def _onnx_float64(proto: Any, x: Any) -> Any:
    """The ONNX model's first output on ``x``, computed in float64 (torch executor)."""
    import numpy as np
    import torch

    from spa_core.gradients.onnx_torch.executor import OnnxTorchGraph

    graph = OnnxTorchGraph(proto)
    graph.in_float64()
    with torch.no_grad():
        return graph.run({}, (torch.from_numpy(np.asarray(x, dtype=np.float64)),))[0].numpy()


def _keras_float64(model: Any) -> Any:
    """A float64 copy of a functional Keras model (same config and weights)."""
    import numpy as np

    def widen(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy":
                return {**node, "config": {**node["config"], "name": "float64"}}
            return {k: ("float64" if k == "dtype" and v == "float32" else widen(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [widen(v) for v in node]
        return node

    copy = model.__class__.from_config(widen(model.get_config()))
    copy.set_weights([w.astype(np.float64) if w.dtype == np.float32 else w for w in model.get_weights()])
    return copy


def _weight_rounding_effect(model64: Any, x64: Any, seed: int = 0) -> float:
    """How far the float64 model moves when every weight gets a float32 rounding error
    (relative, uniform in +-2^-24): the error that the export's float32 weights alone cause
    (tf2onnx folds each BatchNorm into its kernel and rounds the product to float32)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    exact = model64(x64, training=False)
    weights = model64.get_weights()
    model64.set_weights([w * (1 + rng.uniform(-2.0**-24, 2.0**-24, w.shape)) if w.dtype == np.float64 else w
                         for w in weights])
    moved = _relative(model64(x64, training=False), exact)
    model64.set_weights(weights)
    return moved


def float64_checks(model: Any, res: Any, x: Any) -> dict[str, float]:
    """The checks in float64, on ``x`` (from the calibration range):

    * export: the original ONNX against the original Keras model, and ``rounding``: what
      float32 rounding of the weights alone moves the Keras model by (the export's bound);
    * oracle: the pruned ONNX against the original with the removed channels zeroed;
    * keras_onnx: the pruned Keras model against the pruned ONNX.
    """
    import numpy as np

    from spa_core.oracle import zeroed_reference

    x64 = np.asarray(x, dtype=np.float64)
    pruned = _onnx_float64(res.onnx, x)
    original64 = _keras_float64(model)
    return {
        "export": _relative(_onnx_float64(res.analysis.graph.model, x), original64(x64, training=False)),
        "rounding": _weight_rounding_effect(original64, x64),
        "oracle": _relative(pruned, _onnx_float64(zeroed_reference(res.analysis, res.removed), x)),
        "keras_onnx": _relative(_keras_float64(res.model)(x64, training=False), pruned),
    }


def run_one(name: str, ratio: float) -> dict[str, Any]:
    """Build, prune and check one architecture (in this process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import onnxruntime as ort
    from spa_keras.zoo import calibrate_batchnorm, randomize

    import spa_core
    from spa_core.testing import assert_oracle

    row: dict[str, Any] = {"model": name, "success": False, "oracle": False, "keras_onnx": None, "head": "logits"}
    size = SIZES.get(name, DEFAULT_SIZE)
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)  # the kernels' initialisers: every run prunes the same network
    try:
        # logits, not softmax: a saturated softmax would hide differences in the checks
        model = getattr(keras.applications, name)(
            weights=None, input_shape=(size, size, 3), classes=CLASSES, classifier_activation=None
        )
        randomize(model)
        x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
        chaotic = name in CHAOTIC
        if chaotic:
            # the checks' own input among the calibration batch: deep layers see 1x1 maps, whose
            # statistics over a batch without it would not bound its activations
            batch = np.concatenate([x, np.random.default_rng(1).uniform(0, 255, (15, size, size, 3)).astype(np.float32)])
            row["note"] = f"BatchNorm statistics calibrated ({calibrate_batchnorm(model, batch)} layers)"
        row["params"] = int(model.count_params())
        t1 = time.perf_counter()
        # a chaotic network's float32 export check measures rounding: float64_checks instead
        res = spa_core.prune(model, x, ratio=ratio, export_options={"verify": False} if chaotic else None)
        row["seconds"] = round(time.perf_counter() - t1, 1)
        rep = res.report
        row["macs_reduction"] = round(1 - rep.macs_after / max(rep.macs_before, 1), 3)
        row["params_after"] = int(res.model.count_params())
        if chaotic:
            checks = float64_checks(model, res, x)
            # the export may differ by what its float32 weights cause (x4: one random draw), no more
            export_bound = max(1e-4, 4 * checks["rounding"])
            row.update(precision="float64", export_error=checks["export"], rounding_effect=checks["rounding"],
                       oracle_error=checks["oracle"])
            row["note"] += (f"; checked in float64 (export {checks['export']:.1e}, float32 weight rounding alone "
                            f"{checks['rounding']:.1e}; oracle {checks['oracle']:.1e})")
            row["oracle"] = checks["oracle"] <= 1e-4 and checks["export"] <= export_bound
            if not row["oracle"]:
                row["oracle_error_text"] = (f"float64 export {checks['export']:.3g} > {export_bound:.3g} or "
                                            f"oracle {checks['oracle']:.3g} > 1e-4")
            err = checks["keras_onnx"]
        else:
            try:
                row["oracle_error"] = float(assert_oracle(res))
                row["oracle"] = True
            except AssertionError as exc:
                row["oracle_error_text"] = str(exc)
            feeds = {res.onnx.graph.input[0].name: x}
            onnx_out = ort.InferenceSession(res.onnx.SerializeToString()).run(None, feeds)[0]
            err = _relative(np.asarray(res.model(x, training=False)), onnx_out)
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
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith(("I0000", "W0000", "WARNING"))]
    why = f"killed by signal {-proc.returncode} (out of memory?)" if proc.returncode < 0 else f"exit code {proc.returncode}"
    tail = f"; {lines[-1][:160]}" if lines else ""
    return {"model": name, "success": False, "oracle": False, "seconds": round(time.perf_counter() - t0, 1), "reason": f"crashed: {why}{tail}"}


def table(rows: list[dict[str, Any]], missing: list[str] = ()) -> str:
    """The Markdown table of ``rows``; ``missing`` names architectures without a row yet."""
    head = "| model | success | oracle held | keras==onnx | MACs reduction | seconds | failure reason / note |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        ko = r.get("keras_onnx")
        macs = r.get("macs_reduction")
        lines.append(
            f"| {r['model']} | {'yes' if r['success'] else 'no'} | {'yes' if r['oracle'] else 'no'} | "
            f"{'-' if ko is None else f'{ko:.1e}'} | {'-' if macs is None else f'{macs:.1%}'} | "
            f"{r.get('seconds', '-')} | {r.get('reason') or r.get('note', '')} |"
        )
    ok = [r for r in rows if r["success"] and r["oracle"]]
    lines.append(f"\n{len(ok)} of {len(rows)} architectures pruned with the oracle held and Keras == ONNX.")
    if ok:
        macs = sorted(r["macs_reduction"] for r in ok)
        lines.append(
            f"MACs reduction at this ratio: median {macs[len(macs) // 2]:.1%}, range {macs[0]:.1%} to {macs[-1]:.1%}."
        )
    if missing:
        lines.append(f"Not run: {', '.join(missing)}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="architecture names (default: all of keras.applications)")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per architecture")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows in --json (named models that crashed run again), run the rest"
    )
    parser.add_argument("--table-only", action="store_true", help="print the table of the rows in --json, run nothing")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.ratio)), flush=True)
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    names = args.models or architectures()
    reuse = (args.resume or args.table_only) and args.json and args.json.exists()
    done = json.loads(args.json.read_text()) if reuse else []
    rows = [r for r in done if r["model"] not in args.models or not str(r.get("reason", "")).startswith("crashed")]
    for name in [] if args.table_only else names:
        if any(r["model"] == name for r in rows):
            continue
        row = run_isolated(name, args.ratio, args.timeout)
        rows.append(row)
        if args.json:  # after every architecture: an interrupted run keeps its rows
            args.json.write_text(json.dumps(rows, indent=1))
        status = "ok" if row["success"] and row["oracle"] else "FAIL"
        print(f"{name:20s} {status:4s} {row.get('seconds', '-')} s {row.get('reason', '')}", file=sys.stderr, flush=True)
    have = {r["model"] for r in rows}
    everything = architectures() if args.models else names
    text = table(sorted(rows, key=lambda r: r["model"]), [n for n in everything if n not in have])
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
