"""onnxruntime latency of SPA-pruned models at 30 / 50 / 70 % of MACs removed, against the ideal.

Each model is exported, analysed and scored once (:class:`PruningSession`, l1); the per-group
ratio meeting each MACs budget is found by bisection, and the pruned ONNX is timed in
onnxruntime (CPU, one intra-op thread, batch 1). The *ideal* speed-up is the MACs ratio;
*efficiency* is measured speed-up / ideal. Variants are timed round-robin (one run of each
in turn, repeated) so that load on this shared machine hits all of them alike; the median
is reported. Cases where pruning does not speed the model up (speed-up < 1.05) are listed.

Run: ``.venv/bin/python benchmarks/latency.py`` (``--quick``: MobileNetV2 at 112x112).
Writes ``benchmarks/results/latency{,_quick}.{md,json}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import build, export, write_table  # noqa: E402

from spa_core.workflows import PruningSession, as_target, solve_ratio  # noqa: E402

CUTS = (0.3, 0.5, 0.7)


def session_of(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def variants(name: str, size: int, round_tos: list[int]) -> tuple[list[dict[str, Any]], float]:
    """The original and one pruned ONNX per (round_to, MACs cut); also the seconds SPA spent."""
    proto = export(build(name), size)
    t0 = time.perf_counter()
    out: list[dict[str, Any]] = []
    for round_to in round_tos:
        session = PruningSession.open(proto, criterion="l1", round_to=round_to)
        if not out:
            out.append({"cut": 0.0, "round_to": "-", "ratio": 0.0, "macs": session.original[1], "onnx": proto})
        for cut in CUTS:
            ratio = solve_ratio(session, as_target(f"macs={1 - cut}"))
            result = session.prune(ratio)
            out.append({"cut": cut, "round_to": round_to, "ratio": ratio, "macs": result.report.macs_after,
                        "onnx": result.onnx})
    return out, time.perf_counter() - t0


def time_round_robin(sessions: list[ort.InferenceSession], feed: dict[str, np.ndarray], repeats: int) -> list[float]:
    """Median seconds per run of each session, timed in turn ``repeats`` times after a warm-up."""
    for s in sessions:
        for _ in range(2):
            s.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for i, s in enumerate(sessions):
            t0 = time.perf_counter()
            s.run(None, feed)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def measure(name: str, size: int, repeats: int, round_tos: list[int]) -> list[dict[str, Any]]:
    vs, spa_s = variants(name, size, round_tos)
    feed = {"input": np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)}
    medians = time_round_robin([session_of(v["onnx"]) for v in vs], feed, repeats)
    base_t, base_macs = medians[0], vs[0]["macs"]
    rows = []
    for v, t in zip(vs, medians):
        ideal, speed = base_macs / v["macs"], base_t / t
        rows.append({"model": name, "macs_cut": v["cut"], "round_to": v["round_to"], "ratio": round(v["ratio"], 4), "macs": v["macs"],
                     "ms": t * 1e3, "speedup": speed, "ideal": ideal, "efficiency": speed / ideal,
                     "spa_s": spa_s})
    return rows


def table(rows: list[dict[str, Any]], size: int, repeats: int) -> str:
    lines = [f"onnxruntime CPU latency, 1 thread, batch 1, {size}x{size}; median of {repeats} round-robin runs. "
             "ideal = MACs before / after; efficiency = speed-up / ideal", "",
             "| model | MACs removed | round_to | group ratio | MACs | ms | speed-up | ideal | efficiency |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['macs_cut']:.0%} | {r['round_to']} | {r['ratio']:.3f} | {r['macs'] / 1e6:,.0f}M | "
                     f"{r['ms']:.1f} | {r['speedup']:.2f}x | {r['ideal']:.2f}x | {r['efficiency']:.2f} |")
    slow = [r for r in rows if r["macs_cut"] > 0 and r["speedup"] < 1.05]
    lines += ["", "No speed-up (< 1.05x): " + (", ".join(f"{r['model']} at {r['macs_cut']:.0%} (round_to {r['round_to']})" for r in slow)
                                              if slow else "none")]
    worst = min((r for r in rows if r["macs_cut"] > 0), key=lambda r: r["efficiency"], default=None)
    if worst is not None:
        lines.append(f"Lowest efficiency: {worst['model']} at {worst['macs_cut']:.0%}, round_to {worst['round_to']} "
                     f"({worst['speedup']:.2f}x of an ideal {worst['ideal']:.2f}x)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="ResNet-50,MobileNetV2,DenseNet-121,ViT-B/16")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--round-to", default="1,8", help="channel multiples to compare (comma-separated)")
    args = parser.parse_args()
    size = args.size or (112 if args.quick else 224)
    repeats = args.repeats or (5 if args.quick else 10)
    names = ["MobileNetV2"] if args.quick else args.models.split(",")
    rows = []
    for name in names:
        rows += measure(name, size, repeats, [int(v) for v in args.round_to.split(",")])
        print(f"{name}: done", file=sys.stderr)
        text = table(rows, size, repeats)  # written after every model: a cut-short run keeps what it measured
        write_table("latency_quick" if args.quick else "latency", text, {"size": size, "repeats": repeats,
                                                                          "rows": rows})
    print(text)


if __name__ == "__main__":
    main()
