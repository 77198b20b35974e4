"""OBSPA cost per model: seconds and peak memory of data-free OBSPA against plain l1 pruning.

OBSPA (``spa_core.obspa.prune_obspa``) synthesises inputs, collects a Hessian ``X Xᵀ`` for
every consumer of every group, and solves the OBS removal and compensation per group; plain
``l1`` pruning (``prune_onnx``) only scores weights. Both remove the same fraction of every
group (``ratio``, uniform). Each measurement runs in a fresh interpreter; peak memory is
the resident-set growth during the call. Models: the three 28x28 Fashion-MNIST networks
of the OBSPA reproduction (ResNet-14, VGG, MobileNetV2), a ResNet-18 at 112x112 and a
ResNet-50 (25 M parameters) at 64x64 (random weights; the cost does not depend on them).
The Hessians' sizes (input channels x kernel area) do not depend on the resolution; only
their accumulation (samples x pixels) does.

Run: ``.venv/bin/python benchmarks/obspa_speed.py`` (``--quick``: the 28x28 ResNet-14).
Writes ``benchmarks/results/obspa_speed{,_quick}.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "reproductions"))
from bench_models import PeakRSS, build, export, run_worker, write_table  # noqa: E402
from resnets import ResNet  # noqa: E402

# name -> (builder, input size, channels)
SMALL = {"ResNet-14 (28x28)": "resnet14", "VGG (28x28)": "vgg", "MobileNetV2 (28x28)": "mobilenetv2"}


def onnx_of(name: str, size: int) -> Any:
    """The named model as ONNX with a static batch of 1."""
    if name in SMALL:
        from obspa_models import MODELS as OBSPA_MODELS
        from obspa_models import export as export_small

        torch.manual_seed(0)
        return export_small(OBSPA_MODELS[SMALL[name]]().eval()), {"input": (1, 1, 28, 28)}
    torch.manual_seed(0)
    model = ResNet((2, 2, 2, 2)).eval() if name.startswith("ResNet-18") else build("ResNet-50")
    return export(model, size), None


def worker(args: list[str]) -> None:
    """One measurement: ``TOOL NAME SIZE RATIO SAMPLES``; prints JSON."""
    import spa_core
    from spa_core.obspa import prune_obspa

    tool, name, size, ratio, samples = args[0], args[1], int(args[2]), float(args[3]), int(args[4])
    torch.set_num_threads(2)
    proto, shapes = onnx_of(name, size)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        if tool == "obspa":
            result = prune_obspa(proto, ratio=ratio, samples=samples, input_shapes=shapes, validate=False,
                                 progress=False)
        else:
            result = spa_core.prune_onnx(proto, ratio=ratio, criterion="l1", input_shapes=shapes, validate=False)
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_mib": mem.mib, "nodes": len(proto.graph.node),
                      "params": result.report.params_before, "macs": result.report.macs_before,
                      "macs_cut": result.report.macs_reduction, "groups": len(result.analysis.groups),
                      "timings": getattr(result.report, "timings", None) or {}}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--samples", type=int, default=None, help="synthesised inputs (default 64; 8 for the ResNet-18/50)")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    if args.quick:
        cases = [("ResNet-14 (28x28)", 28, args.samples or 32)]
    else:  # ResNet-50's 25 M parameters at 64x64: Hessian sizes are those of 224x224, accumulation is 12x cheaper
        cases = [(n, 28, args.samples or 64) for n in SMALL]
        cases += [("ResNet-18 (112x112)", 112, args.samples or 8), ("ResNet-50 (64x64)", 64, args.samples or 8)]
    rows = []
    for name, size, samples in cases:
        common = [name, str(size), str(args.ratio), str(samples)]
        obs = run_worker(Path(__file__), ["obspa", *common], args.timeout)
        l1 = run_worker(Path(__file__), ["l1", *common], args.timeout)
        rows.append({"model": name, "samples": samples, "obspa": obs, "l1": l1})
        print(f"{name}: OBSPA {obs.get('seconds', obs.get('error'))}, l1 {l1.get('seconds', l1.get('error'))}",
              file=sys.stderr)
    lines = [f"OBSPA (data-free, synthesised inputs) vs l1, ratio {args.ratio} of every group, validation off "
             "(seconds, MiB)", "",
             "| model | params | MACs | groups | samples | OBSPA s | inputs / order / compensate s | OBSPA peak MiB "
             "| l1 s | OBSPA / l1 time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        o, s = r["obspa"], r["l1"]
        ratio = f"{o['seconds'] / s['seconds']:.1f}x" if "seconds" in o and "seconds" in s else "-"
        t = o.get("timings", {})
        split = " / ".join(f"{t[k]:.0f}" for k in ("hessians", "order", "compensate") if k in t) or "-"
        lines.append(f"| {r['model']} | {o.get('params', s.get('params', 0)):,} | {o.get('macs', s.get('macs', 0)):,} | "
                     f"{o.get('groups', '-')} | {r['samples']} | {o.get('seconds', o.get('error', '-')):.4} | {split} | "
                     f"{o.get('peak_mib', 0):.0f} | {s.get('seconds', 0):.2f} | {ratio} |")
    text = "\n".join(lines)
    print(text)
    write_table("obspa_speed_quick" if args.quick else "obspa_speed", text, {"ratio": args.ratio, "rows": rows})


if __name__ == "__main__":
    main()
