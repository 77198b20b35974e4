"""Engine speed and memory: SPA vs Torch-Pruning on ResNet-50, DenseNet-121, ViT-B/16 and a depth sweep.

For each model, one fresh interpreter per tool (so memory is not shared) measures:

* SPA: ``prune_onnx`` (analyse + score + plan + surgery, l1, 50 % per group, no
  onnxruntime validation) and saving the pruned ONNX; the ONNX export is timed apart;
* Torch-Pruning 1.6.1: ``MagnitudePruner`` (DependencyGraph tracing) + ``step()`` with
  ``MagnitudeImportance(p=1)``, 50 % per layer, the classifier ignored, attention heads
  declared for ViT.

Peak memory is the resident-set growth above the level at the start of the timed region
(sampled every 5 ms), so it includes torch tensors, numpy arrays and ONNX protos alike.
Prints seconds, MiB and SPA/TP ratios, and SPA's time per ONNX node along the depth
sweep. Run: ``.venv/bin/python benchmarks/engine_speed.py`` (``--quick``: ResNet-50 only
at 112x112). Writes ``benchmarks/results/engine_speed{,_quick}.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import PeakRSS, build, export, run_worker, write_table  # noqa: E402

NAMED = ["ResNet-50", "DenseNet-121", "ViT-B/16"]
DEPTHS = ["ResNet-50", "ResNet-101", "ResNet-152", "ResNet-200"]


def measure_spa(name: str, size: int) -> dict[str, Any]:
    """SPA on the exported model: phase times, total with save, peak memory."""
    import spa_core
    from spa_core.io import save_model

    model = build(name)
    t0 = time.perf_counter()
    proto = export(model, size)
    export_s = time.perf_counter() - t0
    del model
    with PeakRSS() as mem, tempfile.TemporaryDirectory() as d:
        t1 = time.perf_counter()
        result = spa_core.prune_onnx(proto, ratio=0.5, criterion="l1", validate=False)
        save_model(result.onnx, Path(d) / "pruned.onnx")
        total = time.perf_counter() - t1
    t = result.report.timings
    return {"export_s": export_s, "analyse_s": t["analyse"], "score_s": t["score"], "prune_s": t["prune"],
            "total_s": total, "peak_mib": mem.mib, "nodes": len(proto.graph.node),
            "groups": len(result.analysis.groups), "macs_cut": result.report.macs_reduction}


def measure_tp(name: str, size: int) -> dict[str, Any]:
    """Torch-Pruning: DependencyGraph + MagnitudePruner construction, then one step."""
    import torch_pruning as tp

    model = build(name)
    example = torch.randn(1, 3, size, size)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    heads = {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    before = tp.utils.count_ops_and_params(model, example)[0]
    with warnings.catch_warnings(), PeakRSS() as mem:
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=0.5, ignored_layers=[last], num_heads=heads)
        t1 = time.perf_counter()
        pruner.step()
        total = time.perf_counter() - t0
    after = tp.utils.count_ops_and_params(model, example)[0]
    return {"graph_s": t1 - t0, "total_s": total, "peak_mib": mem.mib, "macs_cut": 1 - after / before}


def worker(args: list[str]) -> None:
    tool, name, size = args[0], args[1], int(args[2])
    torch.set_num_threads(2)
    out = measure_spa(name, size) if tool == "spa" else measure_tp(name, size)
    print(json.dumps(out))


def table(rows: list[dict[str, Any]], size: int) -> str:
    def f(d: dict[str, Any], key: str, fmt: str = ".2f") -> str:
        return format(d[key], fmt) if key in d else d.get("error", "-")

    lines = [f"Engine time and memory at {size}x{size}, 50 % per group/layer, l1 magnitude "
             "(seconds and MiB; SPA/TP < 1 means SPA is cheaper)", "",
             "| model | ONNX nodes | export s | SPA analyse | SPA score | SPA prune | SPA total (+save) | "
             "SPA peak MiB | TP graph | TP total | TP peak MiB | SPA/TP time | SPA/TP memory |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, t = r["spa"], r["tp"]
        ratio_t = f"{s['total_s'] / t['total_s']:.2f}" if "total_s" in s and "total_s" in t else "-"
        ratio_m = (f"{s['peak_mib'] / max(t['peak_mib'], 1.0):.2f}" if "peak_mib" in s and "peak_mib" in t else "-")
        lines.append(f"| {r['model']} | {s.get('nodes', '-')} | {f(s, 'export_s')} | {f(s, 'analyse_s')} | "
                     f"{f(s, 'score_s')} | {f(s, 'prune_s')} | {f(s, 'total_s')} | {f(s, 'peak_mib', '.0f')} | "
                     f"{f(t, 'graph_s')} | {f(t, 'total_s')} | {f(t, 'peak_mib', '.0f')} | {ratio_t} | {ratio_m} |")
    sweep = [r for r in rows if r["model"].startswith("ResNet-") and "total_s" in r["spa"]]
    if len(sweep) > 1:
        base = sweep[0]["spa"]["total_s"] / sweep[0]["spa"]["nodes"]
        lines += ["", "Depth growth, SPA seconds per ONNX node relative to ResNet-50 (1.00 = linear in size): "
                  + ", ".join(f"{r['model']}: {(r['spa']['total_s'] / r['spa']['nodes']) / base:.2f}" for r in sweep)]
        tp_sweep = [r for r in sweep if "total_s" in r["tp"]]
        if len(tp_sweep) > 1:
            tbase = tp_sweep[0]["tp"]["total_s"] / tp_sweep[0]["spa"]["nodes"]
            lines.append("Depth growth, TP seconds per ONNX node relative to ResNet-50: " + ", ".join(
                f"{r['model']}: {(r['tp']['total_s'] / r['spa']['nodes']) / tbase:.2f}" for r in tp_sweep))
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--models", default=None, help="comma-separated subset")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    size = args.size or (112 if args.quick else 224)
    names = args.models.split(",") if args.models else (["ResNet-50"] if args.quick else
                                                        NAMED + DEPTHS[1:])
    rows = []
    for name in names:
        spa = run_worker(Path(__file__), ["spa", name, str(size)], args.timeout)
        tp = run_worker(Path(__file__), ["tp", name, str(size)], args.timeout)
        rows.append({"model": name, "spa": spa, "tp": tp})
        print(f"{name}: SPA {spa.get('total_s', spa.get('error'))}, TP {tp.get('total_s', tp.get('error'))}",
              file=sys.stderr)
        text = table(rows, size)  # written after every model: a cut-short run keeps what it measured
        write_table("engine_speed_quick" if args.quick else "engine_speed", text, {"size": size, "rows": rows})
    print(text)


if __name__ == "__main__":
    main()
