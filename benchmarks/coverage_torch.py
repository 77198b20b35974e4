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
  the pruned model still runs on the example input, within ``TP_LIMIT`` (90 s; it loops
  on some graphs). Its MACs come from ``tp.utils.count_ops_and_params``; SPA's from its
  own ONNX counter.
* When the pruned ``nn.Module`` cannot run because a layer's forward() hard-codes a
  width, SPA prunes again without that layer (``result.extras["auto_ignored"]``, shown
  as a note); the MACs reduction shows what that cost.

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
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coverage_torch_report import load_rows, write_outputs  # noqa: E402
from worker_pool import PART, ROW, Worker, current_rss_bytes, emit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TP_LIMIT = 90.0  # seconds for Torch-Pruning on one model (it takes 0.1-5 s where it works)
QUICK = [
    "torchvision:cls:resnet18",
    "torchvision:cls:mobilenet_v3_small",
    "torchvision:seg:lraspp_mobilenet_v3_large",
    "timm:convnext_atto",
    "timm:vit_tiny_patch16_224",
]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


# ---------------------------------------------------------------------------- the two tools
def run_spa(model: Any, x: Any, ratio: float) -> dict[str, Any]:
    """Prune with SPA and check the oracle."""
    import spa_core
    from spa_core.api import barrier_summary
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
        row["spa_reason"] = f"{exc}; {barrier_summary(res.analysis, top=2)}".rstrip("; ")
    except Exception as exc:
        row["spa_reason"] = f"oracle check failed: {first_line(exc)}"
    notes = []
    if res.extras.get("auto_ignored"):
        notes.append("left unpruned, forward() hard-codes widths: " + ", ".join(res.extras["auto_ignored"]))
    if row["spa_oracle"] and res.analysis.unknown_ops:
        notes.append(barrier_summary(res.analysis, top=2))
    if notes:
        row["note"] = "; ".join(notes)
    return row


class TPTimeout(Exception):
    """Torch-Pruning ran past its own time limit (it loops on some graphs)."""


def _alarm(signum: int, frame: Any) -> None:
    raise TPTimeout


def run_tp(model: Any, x: Any, ratio: float, ignored: list[Any], limit: float = TP_LIMIT) -> dict[str, Any]:
    """Prune with Torch-Pruning (in place) and check that the pruned model runs (``limit`` seconds)."""
    import torch
    import torch_pruning as tp

    row: dict[str, Any] = {"tp_ok": False}
    stage = "count_ops_and_params (before)"
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
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
    except TPTimeout:
        row["tp_seconds"] = round(time.perf_counter() - t0, 2)
        row["tp_reason"] = f"{stage}: timed out after {limit:.0f} s"
        return row
    except Exception as exc:
        row.setdefault("tp_seconds", round(time.perf_counter() - t0, 2))
        row["tp_reason"] = f"{stage}: {first_line(exc)}"
        return row
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
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
    if spec.startswith("timm:") and "onnx.export failed" in str(row.get("spa_reason", "")):
        built, row, note = retry_at_native_size(spec, max_params, ratio, built, row, note)
    if note and row.get("note") and row["note"] != note:
        row["note"] = f"{note}; {row['note']}"
    emit(PART, row)
    torch.manual_seed(0)
    row.update(run_tp(built.model, built.example, ratio, built.ignored))
    return row


def retry_at_native_size(
    spec: str, max_params: int, ratio: float, built: Any, row: dict[str, Any], note: str | None
) -> tuple[Any, dict[str, Any], str | None]:
    """The small input the sweep picked runs in torch but does not export (an adaptive pool that
    would upsample, an Unfold whose size the exporter cannot read): prune at the model's own input
    size instead, and say so. Both tools get the same input."""
    from torch_zoo import build

    try:
        native = build(spec, max_params, native=True)
    except Exception:
        return built, row, note
    if native.example.shape == built.example.shape:
        return built, row, note
    why = str(row["spa_reason"]).split("[Caused")[0][:160].strip()
    side = "x".join(map(str, native.example.shape[-2:]))
    retried = {k: v for k, v in row.items() if not k.startswith("spa_") and k != "note"}
    note = f"export fails at {row['input']} ({why}); run at {side}"
    retried.update(input=side, note=note)
    retried.update(run_spa(native.model, native.example, ratio))
    return native, retried, note


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


def sweep(names: list[str], args: argparse.Namespace, done: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Run every model in worker subprocesses; print one progress line per model.

    ``done`` is called with each finished row (the caller keeps the results on disk).
    """
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
        done(row)
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
    parser.add_argument("--resume", action="store_true", help="keep the rows already in the output CSV, run the rest")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.max_params = int(args.max_params)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.ratio, args.max_params)
    from importlib.metadata import version

    import torch

    names = model_list(args)
    stem = args.output or RESULTS / ("coverage_torch_quick" if args.quick else "coverage_torch")
    previous = load_rows(stem.with_suffix(".csv")) if args.resume else {}
    finished = {n: previous[n] for n in names if n in previous}
    todo = [n for n in names if n not in finished]
    kept = len(finished)
    order = {n: i for i, n in enumerate(names)}
    t0 = time.perf_counter()

    def header() -> str:
        minutes = (time.perf_counter() - t0) / 60
        resumed = f" ({kept} kept from an earlier run)" if kept else ""
        return (
            f"# PyTorch coverage: SPA vs Torch-Pruning {version('torch-pruning')} (ratio {args.ratio})\n\n"
            f"torch {torch.__version__}; {len(finished)} of {len(names)} models done{resumed}; this run "
            f"{minutes:.1f} min with {args.jobs} worker(s), 1 thread each, {args.timeout:.0f} s per model. "
            "Generated by `benchmarks/coverage_torch.py`."
        )

    def done(row: dict[str, Any]) -> None:
        finished[row["spec"]] = row
        write_outputs(sorted(finished.values(), key=lambda r: order[r["spec"]]), stem, header())

    sweep(todo, args, done)
    rows = sorted(finished.values(), key=lambda r: order[r["spec"]])
    write_outputs(rows, stem, header())
    print(stem.with_suffix(".md").read_text())
    print(f"wrote {stem.with_suffix('.md')} and .csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
