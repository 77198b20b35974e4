"""Engine speed: analyse + score + prune + save a ResNet-50, and growth with depth.

Compares SPA (ONNX graph analysis, l1, 50 % per group) with Torch-Pruning 1.6.1
(DependencyGraph + MagnitudePruner, same ratio) in the same run. Prints a table of
seconds and SPA/TP ratios. Run: ``.venv/bin/python benchmarks/engine_speed.py``
(``--quick`` for depths 50 and 101 only).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).parent))
from resnets import resnet_of_depth  # noqa: E402

import spa_core  # noqa: E402
from spa_core.io import save_model  # noqa: E402


def export(model: torch.nn.Module, size: int) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.randn(1, 3, size, size),), buf, dynamo=False, do_constant_folding=False,
                      input_names=["input"], output_names=["output"])
    return onnx.load_from_string(buf.getvalue())


def time_spa(model_proto: onnx.ModelProto) -> dict[str, float]:
    tracemalloc.start()
    t0 = time.perf_counter()
    result = spa_core.prune_onnx(model_proto, ratio=0.5, criterion="l1", validate=False)
    with tempfile.TemporaryDirectory() as d:
        save_model(result.onnx, Path(d) / "pruned.onnx")
    total = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t = result.report.timings
    return {"analyse": t["analyse"], "score": t["score"], "prune": t["prune"], "total": total,
            "peak_mb": peak / 2**20, "groups": len(result.analysis.groups), "macs_cut": result.report.macs_reduction}


def time_torch_pruning(model: torch.nn.Module, size: int) -> dict[str, float]:
    import torch_pruning as tp

    example = torch.randn(1, 3, size, size)
    tracemalloc.start()
    t0 = time.perf_counter()
    pruner = tp.pruner.MagnitudePruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
        ignored_layers=[model.fc],
    )
    t1 = time.perf_counter()
    pruner.step()
    total = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"graph": t1 - t0, "total": total, "peak_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    depths = [50, 101] if args.quick else [50, 101, 200, 400]
    rows = []
    for depth in depths:
        torch.manual_seed(0)
        model = resnet_of_depth(depth).eval()
        t_export = time.perf_counter()
        proto = export(model, args.size)
        t_export = time.perf_counter() - t_export
        spa = time_spa(proto)
        tp = time_torch_pruning(model, args.size)
        rows.append((depth, len(proto.graph.node), t_export, spa, tp))
        print(f"depth {depth}: done", file=sys.stderr)
    print(f"\nResNet depth sweep at {args.size}x{args.size}, ratio 0.5, l1 (seconds; lower is better)\n")
    print("| depth | ONNX nodes | export | SPA analyse | SPA score | SPA prune+save | SPA total | SPA peak MB | TP total | TP peak MB | SPA/TP |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for depth, nodes, t_export, s, t in rows:
        print(f"| {depth} | {nodes} | {t_export:.2f} | {s['analyse']:.2f} | {s['score']:.2f} | {s['total'] - s['analyse'] - s['score']:.2f} | "
              f"{s['total']:.2f} | {s['peak_mb']:.0f} | {t['total']:.2f} | {t['peak_mb']:.0f} | {s['total'] / t['total']:.2f} |")
    base_nodes, base_time = rows[0][1], rows[0][3]["total"]
    print("\nGrowth (SPA total time per node, relative to the smallest model): "
          + ", ".join(f"depth {d}: {(s['total'] / n) / (base_time / base_nodes):.2f}" for d, n, _, s, _ in rows))


if __name__ == "__main__":
    main()
