"""The numbers an HTML report shows, gathered from a :class:`~spa_core.api.PruneResult`.

Everything is collected here (sizes, measured onnxruntime latency, groups with their
layers and scores, barriers), so rendering (:mod:`spa_core.html_report`) only formats.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import onnx

from .inspect_view import (
    Barrier,
    GroupLayer,
    barriers,
    group_layers,
    layer_label,
    unknown_operators,
)
from .plan import Plan

if TYPE_CHECKING:
    from .api import PruneResult


@dataclass
class Latency:
    """Median wall time of a few onnxruntime runs (after one warm-up run)."""

    median_ms: float | None
    runs: list[float] = field(default_factory=list)
    threads: int = 1
    error: str | None = None


@dataclass
class GroupRow:
    """One channel group as the report shows it."""

    id: int
    size: int
    kept: list[int]
    params_removed: int
    macs_removed: int
    layers: list[GroupLayer]
    members: list[str]
    scores: list[float] | None = None

    @property
    def n_kept(self) -> int:
        return len(self.kept)


@dataclass
class LayerRow:
    """One Conv/Gemm/MatMul output: channel width and MACs before and after."""

    node: str
    label: str
    op: str
    before: int
    after: int
    macs_before: int
    macs_after: int


@dataclass
class ReportData:
    """Everything the page shows."""

    title: str
    command: str | None
    options: dict[str, Any]
    params: tuple[int, int]
    macs: tuple[int, int]
    size: tuple[int, int]
    latency: tuple[Latency, Latency] | None
    layers: list[LayerRow]
    groups: list[GroupRow]
    barriers: list[Barrier]
    unknown: dict[str, list[str]]
    timings: dict[str, float]
    environment: dict[str, str]
    created: str

    @property
    def channels(self) -> tuple[int, int]:
        return sum(g.size for g in self.groups), sum(g.n_kept for g in self.groups)


def default_threads() -> int:
    """onnxruntime intra-op threads used for latency: the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def measure_latency(
    model: onnx.ModelProto,
    feeds: dict[str, Any],
    threads: int | None = None,
    runs: int = 7,
    min_runs: int = 3,
    budget_s: float = 4.0,
    sample_s: float = 0.005,
) -> Latency:
    """Median of up to ``runs`` timed runs (at least ``min_runs``; stops after ``budget_s``).

    A model faster than ``sample_s`` is run several times per timed run (the mean of
    those is one run), so that tiny models are not measured at timer resolution.
    """
    from .runtime import session

    threads = threads or default_threads()
    try:
        sess = session(model, threads=threads)
        names = [o.name for o in sess.get_outputs()]
        t0 = time.perf_counter()
        sess.run(names, feeds)  # warm-up
        first = time.perf_counter() - t0
        repeat = max(1, min(1000, int(sample_s / max(first, 1e-6))))
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            for _ in range(repeat):
                sess.run(names, feeds)
            times.append((time.perf_counter() - t0) * 1e3 / repeat)
    except Exception as exc:  # a model onnxruntime cannot run: report it, do not fail
        return Latency(None, threads=threads, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return Latency(statistics.median(times), times, threads)


def _layer_rows(result: PruneResult) -> list[LayerRow]:
    graph = result.analysis.graph
    index_of = {graph.node_name(i): i for i in range(len(graph.model.graph.node))}
    rows = []
    for w in result.report.layer_widths:
        label = w["node"]
        index = index_of.get(w["node"])
        if index is not None:
            params = [n for n in graph.model.graph.node[index].input if graph.is_parameter(n)]
            label = layer_label(params, w["node"]) if params else w["node"]
        rows.append(
            LayerRow(w["node"], label, w["op"], int(w["before"]), int(w["after"]),
                     int(w.get("macs_before", 0)), int(w.get("macs_after", 0)))
        )
    return rows


def _group_rows(result: PruneResult, plan: Plan) -> list[GroupRow]:
    planned = {g.id: g for g in plan.groups}
    shares = {g.id: g for g in result.report.groups}
    rows = []
    for g in result.analysis.groups:
        p = planned.get(g.id)
        share = shares.get(g.id)
        kept = list(p.kept) if p is not None else list(range(g.size))
        scores = list(p.scores) if p is not None and p.scores is not None else None
        rows.append(
            GroupRow(
                id=g.id,
                size=g.size,
                kept=kept,
                params_removed=share.params_removed if share else 0,
                macs_removed=share.macs_removed if share else 0,
                layers=group_layers(result.analysis, g),
                members=[f"{n}:{a}" for n, a in g.members],
                scores=scores,
            )
        )
    return rows


def _environment(threads: int) -> dict[str, str]:
    import importlib.metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    return {
        "SPA": version("spa-prune"),
        "onnx": version("onnx"),
        "onnxruntime": f"{version('onnxruntime')} (CPU, {threads} intra-op threads)",
        "Python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
    }


def collect(
    result: PruneResult,
    *,
    command: str | None = None,
    plan: Plan | None = None,
    pruned: onnx.ModelProto | None = None,
    title: str | None = None,
    measure: bool = True,
    threads: int | None = None,
) -> ReportData:
    """The report's numbers for ``result``.

    ``plan`` (default ``result.plan``) supplies the scores and options; ``pruned``
    (default ``result.onnx``) is the model whose size and latency are measured after.
    """
    from .runtime import random_inputs

    plan = plan or result.plan
    pruned = pruned if pruned is not None else result.onnx
    original = result.original_onnx
    threads = threads or default_threads()
    latency = None
    if measure:
        feeds = random_inputs(original)
        latency = (measure_latency(original, feeds, threads), measure_latency(pruned, feeds, threads))
    r = result.report
    return ReportData(
        title=title or (original.graph.name or "ONNX model"),
        command=command,
        options=dict(plan.options),
        params=(r.params_before, r.params_after),
        macs=(r.macs_before, r.macs_after),
        size=(original.ByteSize(), pruned.ByteSize()),
        latency=latency,
        layers=_layer_rows(result),
        groups=_group_rows(result, plan),
        barriers=barriers(result.analysis),
        unknown=unknown_operators(result.analysis),
        timings=dict(r.timings),
        environment=_environment(threads),
        created=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
    )
