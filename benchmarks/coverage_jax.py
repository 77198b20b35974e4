"""Coverage of Flax architectures (NNX and linen): prune each one and check the result.

The architectures are built in code (:mod:`spa_jax.zoo`: ResNet, MobileNet, Transformer
encoder, VGG, DenseNet, MLP-Mixer in NNX; ResNet, MobileNet, Transformer and a
hard-coded-width CNN in linen) with random BatchNorm statistics and affine parameters,
pruned at ``--ratio`` (0.5) with ``spa_core.prune`` and checked:

* oracle: the pruned ONNX equals the original with the removed channels zeroed;
* flax==onnx: the pruned Flax model computes what the pruned ONNX computes (1e-4);
* the MACs reduction; for linen, whether the module could be re-created.

A model that does not prune gets the reason, naming the operator or pattern::

    python benchmarks/coverage_jax.py                      # all
    python benchmarks/coverage_jax.py nnx_resnet nnx_vgg   # some
    python benchmarks/coverage_jax.py --markdown out.md --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def run_one(name: str, ratio: float) -> dict[str, Any]:
    """Build, prune and check one architecture."""
    import numpy as np
    import onnxruntime as ort
    from spa_jax import LinenModel, zoo

    import spa_core
    from spa_core.testing import assert_oracle

    row: dict[str, Any] = {"model": name, "success": False, "oracle": False, "flax_onnx": None}
    t0 = time.perf_counter()
    try:
        model, x = zoo.MODELS[name]()
        res = spa_core.prune(model, x, ratio=ratio)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rep = res.report
        row["macs_reduction"] = round(rep.macs_reduction, 3)
        row["params_reduction"] = round(rep.params_reduction, 3)
        row["groups"] = len(res.plan.groups)
        row["barriers"] = dict(sorted(rep.barriers.items(), key=lambda kv: -kv[1])[:3])
        row["unknown_ops"] = dict(rep.unknown_operators)
        try:
            row["oracle_error"] = float(assert_oracle(res))
            row["oracle"] = True
        except AssertionError as exc:
            row["reason"] = str(exc)
        if isinstance(res.model, LinenModel) and res.model.module is None:
            row["reason"] = "variables pruned, module not re-created: " + "; ".join(res.model.notes)
            return row
        sess = ort.InferenceSession(res.onnx.SerializeToString(), providers=["CPUExecutionProvider"])
        onnx_out = sess.run(None, {sess.get_inputs()[0].name: np.asarray(x)})[0]
        flax_out = np.asarray(res.model(x))
        err = float(np.max(np.abs(onnx_out - flax_out)) / max(1e-6, float(np.max(np.abs(onnx_out)))))
        row["flax_onnx"] = err
        row["success"] = err <= 1e-4 and rep.macs_after < rep.macs_before
        if err > 1e-4:
            row["reason"] = f"pruned Flax model differs from pruned ONNX (relative {err:.2g})"
        elif rep.macs_after >= rep.macs_before:
            row["reason"] = "nothing removed: " + ", ".join(f"{k} ({v})" for k, v in row["barriers"].items())
    except Exception as exc:  # one row per failure, with the operator/pattern named
        row["reason"] = _first_line(exc)
        row.setdefault("seconds", round(time.perf_counter() - t0, 1))
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = "| model | prunes | oracle held | flax==onnx | MACs reduction | seconds | reason it does not prune |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        fo, macs = r.get("flax_onnx"), r.get("macs_reduction")
        lines.append(
            f"| {r['model']} | {'yes' if r['success'] else 'no'} | {'yes' if r['oracle'] else 'no'} | "
            f"{'-' if fo is None else f'{fo:.1e}'} | {'-' if macs is None else f'{macs:.1%}'} | "
            f"{r.get('seconds', '-')} | {r.get('reason', '')} |"
        )
    ok = sum(r["success"] and r["oracle"] for r in rows)
    lines.append(f"\n{ok} of {len(rows)} Flax architectures pruned with the oracle held and Flax == ONNX.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from spa_jax import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=f"architectures (default: all of {', '.join(zoo.MODELS)})")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models or list(zoo.MODELS):
        row = run_one(name, args.ratio)
        rows.append(row)
        status = "ok" if row["success"] and row["oracle"] else "no"
        print(f"{name:20s} {status:3s} {row.get('seconds', '-')} s {row.get('reason', '')}", file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
