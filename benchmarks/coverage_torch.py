"""Coverage of torchvision and timm: SPA against Torch-Pruning on the same models.

Every torchvision classification model, the segmentation models and the detection
backbones, and a sample of timm architectures (``torch_zoo.py``; random weights, nothing
downloaded) are pruned at ``--ratio`` 0.3 twice, in the same run and process:

* SPA: ``spa_core.prune(model, x, ratio=0.3, criterion="l1")``; success when it returns a
  pruned module (the adapter checks it against the pruned ONNX); the oracle
  (``spa_core.testing.assert_oracle``, rtol 1e-4) is recorded separately.
* Torch-Pruning 1.6.1: ``tp.pruner.MagnitudePruner`` with
  ``tp.importance.MagnitudeImportance(p=1)``, ``pruning_ratio=0.3``, the final
  classifier ignored (a detection backbone has none); success when ``step()`` runs and
  the pruned model still runs on the example input. Its MACs come from
  ``tp.utils.count_ops_and_params``; SPA's from its own ONNX counter.

Every failure gets a reason that names the operator or pattern (SPA's exception, its
unknown operators and barriers; TP's exception). Models run in worker subprocesses with a
time limit each (``worker_pool.py``)::

    python benchmarks/coverage_torch.py                    # everything (hours on 2 cores)
    python benchmarks/coverage_torch.py --quick            # a handful, < 2 min
    python benchmarks/coverage_torch.py --only torchvision --limit 10
    python benchmarks/coverage_torch.py timm:resnet18 torchvision:cls:vgg11

Writes ``benchmarks/results/coverage_torch.md`` and ``.csv`` (``--output STEM``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_pool import PART, ROW, Worker, current_rss_bytes, emit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = [
    "torchvision:cls:resnet18",
    "torchvision:cls:mobilenet_v3_small",
    "torchvision:seg:lraspp_mobilenet_v3_large",
    "timm:convnext_atto",
    "timm:vit_tiny_patch16_224",
]
COLUMNS = [
    "model", "source", "input", "params_m", "spa_ok", "spa_oracle", "spa_oracle_error", "spa_macs_reduction",
    "spa_seconds", "spa_groups", "spa_reason", "tp_ok", "tp_macs_reduction", "tp_seconds", "tp_reason",
    "skipped", "note",
]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


# ---------------------------------------------------------------------------- the two tools
def barrier_summary(analysis: Any) -> str:
    """Unknown operators and the largest barrier causes, for a failure reason."""
    parts = []
    if analysis.unknown_ops:
        parts.append("unknown ops: " + ", ".join(f"{k} x{v}" for k, v in analysis.unknown_ops.items()))
    if analysis.blocked_reasons:
        top = analysis.blocked_reasons.most_common(2)
        parts.append("barriers: " + "; ".join(f"{r} ({n})" for r, n in top))
    return " | ".join(parts)


def run_spa(model: Any, x: Any, ratio: float) -> dict[str, Any]:
    """Prune with SPA and check the oracle."""
    import spa_core
    from spa_core.testing import assert_oracle

    row: dict[str, Any] = {"spa_ok": False, "spa_oracle": False}
    t0 = time.perf_counter()
    try:
        res = spa_core.prune(model, x, ratio=ratio, criterion="l1")
    except Exception as exc:
        row.update(spa_seconds=round(time.perf_counter() - t0, 2), spa_reason=first_line(exc))
        return row
    row.update(spa_ok=True, spa_seconds=round(time.perf_counter() - t0, 2),
               spa_macs_reduction=round(res.report.macs_reduction, 4), spa_groups=len(res.analysis.groups))
    try:
        row["spa_oracle_error"] = float(assert_oracle(res, rtol=1e-4))
        row["spa_oracle"] = True
    except AssertionError as exc:
        row["spa_reason"] = f"{exc}; {barrier_summary(res.analysis)}".rstrip("; ")
    except Exception as exc:
        row["spa_reason"] = f"oracle check failed: {first_line(exc)}"
    if row["spa_oracle"] and res.analysis.unknown_ops:
        row["note"] = barrier_summary(res.analysis)
    return row


def run_tp(model: Any, x: Any, ratio: float, ignored: list[Any]) -> dict[str, Any]:
    """Prune with Torch-Pruning (in place) and check that the pruned model runs."""
    import torch
    import torch_pruning as tp

    row: dict[str, Any] = {"tp_ok": False}
    stage = "count_ops_and_params (before)"
    t0 = time.perf_counter()
    try:
        macs_before, _ = tp.utils.count_ops_and_params(model, x)
        stage = "MagnitudePruner()"
        t0 = time.perf_counter()
        pruner = tp.pruner.MagnitudePruner(
            model, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio,
            ignored_layers=ignored,
        )
        stage = "step()"
        pruner.step()
        row["tp_seconds"] = round(time.perf_counter() - t0, 2)
        stage = "pruned model forward"
        with torch.no_grad():
            model(x)
        stage = "count_ops_and_params (after)"
        macs_after, _ = tp.utils.count_ops_and_params(model, x)
    except Exception as exc:
        row.setdefault("tp_seconds", round(time.perf_counter() - t0, 2))
        row["tp_reason"] = f"{stage}: {first_line(exc)}"
        return row
    row.update(tp_ok=True, tp_macs_reduction=round(1 - macs_after / max(macs_before, 1), 4))
    return row


# ---------------------------------------------------------------------------- one model
def run_one(spec: str, ratio: float, max_params: int) -> dict[str, Any]:
    """Build one model and prune it with both tools (in this process)."""
    import torch
    from torch_zoo import SkipModel, build

    row: dict[str, Any] = {"model": spec.split(":")[-1], "source": spec.split(":")[0], "spec": spec}
    try:
        built = build(spec, max_params)
    except SkipModel as exc:
        row["skipped"] = str(exc)
        return row
    except Exception as exc:
        row["skipped"] = f"cannot build or run the unpruned model: {first_line(exc)}"
        return row
    row["input"] = "x".join(map(str, built.example.shape[-2:]))
    row["params_m"] = round(sum(p.numel() for p in built.model.parameters()) / 1e6, 2)
    if built.note:
        row["note"] = built.note
    note = row.get("note")
    row.update(run_spa(built.model, built.example, ratio))
    if note and row.get("note") and row["note"] != note:
        row["note"] = f"{note}; {row['note']}"
    emit(PART, row)
    torch.manual_seed(0)
    row.update(run_tp(built.model, built.example, ratio, built.ignored))
    return row


def worker_main(ratio: float, max_params: int) -> int:
    """Worker loop: one model spec per stdin line, one row per model on stdout."""
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    for line in sys.stdin:
        spec = line.strip()
        if spec:
            row = run_one(spec, ratio, max_params)
            row["rss_mb"] = current_rss_bytes() // 2**20
            emit(ROW, row)
    return 0


# ---------------------------------------------------------------------------- the sweep
def model_list(args: argparse.Namespace) -> list[str]:
    from torch_zoo import timm_sample, torchvision_names

    if args.models:
        names = list(args.models)
    elif args.quick:
        names = list(QUICK)
    else:
        names = []
        if args.only in (None, "torchvision"):
            names += torchvision_names()
        if args.only in (None, "timm"):
            names += timm_sample(args.timm_count)
    if args.only:
        names = [n for n in names if n.startswith(args.only + ":")]
    return names[: args.limit] if args.limit else names


def sweep(names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every model in worker subprocesses; print one progress line per model."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--ratio", str(args.ratio),
            "--max-params", str(args.max_params)]
    workers: list[Worker] = []
    rows: dict[int, dict[str, Any]] = {}

    def job(index: int) -> None:
        worker = workers.pop() if workers else Worker(argv)
        spec = names[index]
        t0 = time.perf_counter()
        row, partial, why = worker.run(spec, args.timeout)
        if row is None:
            row = {"model": spec.split(":")[-1], "source": spec.split(":")[0], "spec": spec, **partial}
            key = "tp_reason" if "spa_ok" in partial else "spa_reason"
            row[key] = why
            row.setdefault("spa_ok", False)
            row.setdefault("tp_ok", False)
        elif row.get("rss_mb", 0) > args.restart_mb:
            worker.stop()  # memory a big model left behind
        rows[index] = row
        workers.append(worker)
        print(progress_line(index, len(names), row, time.perf_counter() - t0), file=sys.stderr, flush=True)

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(job, range(len(names))))
    finally:
        for w in workers:
            w.stop()
    return [rows[i] for i in range(len(names))]


def progress_line(index: int, total: int, row: dict[str, Any], seconds: float) -> str:
    if row.get("skipped"):
        status = "skip"
    else:
        spa = "ok" if row.get("spa_oracle") else ("NOORACLE" if row.get("spa_ok") else "FAIL")
        status = f"spa {spa:8s} tp {'ok' if row.get('tp_ok') else 'FAIL'}"
    why = row.get("skipped") or row.get("spa_reason") or ""
    return f"[{index + 1}/{total}] {row['spec']:55s} {status} {seconds:6.1f}s {why[:120]}"


# ---------------------------------------------------------------------------- output
def _pct(v: Any) -> str:
    return "-" if v is None or v == "" else f"{float(v):.1%}"


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "/").replace("\n", " ")[:220]


def totals(rows: list[dict[str, Any]]) -> list[str]:
    """One line per source: 'torchvision: SPA 80/80 (oracle 80), TP 72/80'."""
    lines = []
    for source in sorted({r["source"] for r in rows}, key=lambda s: (s != "torchvision", s)):
        mine = [r for r in rows if r["source"] == source and not r.get("skipped")]
        skipped = sum(1 for r in rows if r["source"] == source and r.get("skipped"))
        n = len(mine)
        spa = sum(bool(r.get("spa_ok")) for r in mine)
        oracle = sum(bool(r.get("spa_oracle")) for r in mine)
        tp = sum(bool(r.get("tp_ok")) for r in mine)
        extra = f" ({skipped} skipped)" if skipped else ""
        lines.append(f"{source}: SPA {spa}/{n} (oracle {oracle}), TP {tp}/{n}{extra}")
    return lines


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    out = [header, "", "| model | source | input | params (M) | SPA | oracle | SPA MACs -% | SPA s | TP | TP MACs -% "
           "| TP s | SPA failure / note | TP failure |", "|" + "---|" * 13]
    for r in rows:
        if r.get("skipped"):
            out.append(f"| {r['model']} | {r['source']} | - | - | skipped | | | | skipped | | | {_cell(r['skipped'])} | |")
            continue
        spa_note = r.get("spa_reason") or r.get("note") or ""
        out.append(
            f"| {r['model']} | {r['source']} | {r.get('input', '-')} | {r.get('params_m', '-')} | "
            f"{'yes' if r.get('spa_ok') else 'no'} | {'yes' if r.get('spa_oracle') else 'no'} | "
            f"{_pct(r.get('spa_macs_reduction'))} | {r.get('spa_seconds', '-')} | "
            f"{'yes' if r.get('tp_ok') else 'no'} | {_pct(r.get('tp_macs_reduction'))} | {r.get('tp_seconds', '-')} | "
            f"{_cell(spa_note)} | {_cell(r.get('tp_reason'))} |"
        )
    out += ["", "**Totals** (success / models run; oracle = SPA results whose oracle held):", ""]
    out += [f"* {line}" for line in totals(rows)]
    return "\n".join(out) + "\n"


def write_outputs(rows: list[dict[str, Any]], stem: Path, header: str) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(markdown(rows, header))
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="specs: torchvision:cls|seg|det:NAME or timm:NAME")
    parser.add_argument("--quick", action="store_true", help=f"only {len(QUICK)} small models (< 2 min)")
    parser.add_argument("--only", choices=["torchvision", "timm"])
    parser.add_argument("--limit", type=int, default=0, help="at most N models")
    parser.add_argument("--timm-count", type=int, default=240, help="size of the timm sample")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model (both tools)")
    parser.add_argument("--max-params", type=float, default=350e6, help="skip larger models")
    parser.add_argument("--jobs", type=int, default=1, help="models in parallel (one worker each)")
    parser.add_argument("--restart-mb", type=int, default=3000, help="restart a worker above this RSS")
    parser.add_argument("--output", type=Path, help="output stem (default results/coverage_torch[_quick])")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.max_params = int(args.max_params)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.ratio, args.max_params)
    names = model_list(args)
    t0 = time.perf_counter()
    rows = sweep(names, args)
    minutes = (time.perf_counter() - t0) / 60
    from importlib.metadata import version

    import torch

    header = (
        f"# PyTorch coverage: SPA vs Torch-Pruning {version('torch-pruning')} (ratio {args.ratio})\n\n"
        f"torch {torch.__version__}; {len(names)} models; {minutes:.1f} min with {args.jobs} worker(s), "
        "1 thread each. Generated by `benchmarks/coverage_torch.py`."
    )
    text = markdown(rows, header)
    print(text)
    stem = args.output or RESULTS / ("coverage_torch_quick" if args.quick else "coverage_torch")
    write_outputs(rows, stem, header)
    print(f"wrote {stem.with_suffix('.md')} and .csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
