"""OBSPA: prune a trained ONNX model with no fine-tuning, with or without data.

1. channel groups from the engine's analysis; consumers of each group (:mod:`.consumers`);
2. consumer-input Hessians from calibration data or synthesised inputs (:mod:`.synth`,
   :mod:`.hessian`);
3. per group, channels ordered by greedy block OBS over all its consumers (:mod:`.obs`);
4. how many channels each group loses: a ratio or a MACs target (:mod:`.allocate`);
5. surgery by the engine, then every consumer's kept weights replaced by their compensation
   (and output shifts absorbed by a bias or a following BatchNorm): by default re-fitted in
   graph order on the inputs of the model pruned so far (:mod:`.sequential`), else each from
   its dense inputs alone (the OBS update).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import ArrayLike
from onnx import numpy_helper
from tqdm.auto import tqdm

from ..analysis import Analysis
from ..api import PruneResult, analyze_onnx
from ..criteria.base import get_criterion
from ..errors import FrameworkError, InvalidOptionError, UnprunableModelError
from ..graph import Graph
from ..importance import score_groups
from ..io import load_model
from ..planner import build_plan, removed_class_mask
from ..prepare import prepare
from ..report import build_report
from ..surgery import apply_removal, check_model, surgery_view
from .allocate import GroupOrder, allocate
from .consumers import Consumer, find_consumers
from .hessian import HessianAccumulator, Runner, batches
from .obs import ObsLayer, compensate, damped_inverse, greedy_order
from .options import COMPENSATIONS, DEFAULT_SAMPLES, FROZEN_STATISTICS, SYNTHESES
from .sequential import sequential_weights
from .synth import bn_statistics, gaussian_feeds, inverted_feeds, with_initializers


def _run_graph(model: onnx.ModelProto, analysis: Analysis, batch: int) -> Graph:
    """The model prepared with a static batch of ``batch`` (the analysis' graph if that fails)."""
    g = analysis.graph
    if all(g.shapes[n][0] == batch for n in g.input_names):
        return g
    try:
        return prepare(model, {n: (batch, *g.shapes[n][1:]) for n in g.input_names})
    except Exception as exc:  # a batch size baked into the graph: run one sample at a time
        raise InvalidOptionError(f"cannot run this model with a batch of {batch}: {exc}") from exc


def _feeds(graph: Graph, calibration: Mapping[str, ArrayLike] | ArrayLike | None, samples: int, seed: int) -> dict[str, np.ndarray]:
    if calibration is None:
        return gaussian_feeds(graph, samples, seed)
    if not isinstance(calibration, Mapping):
        if len(graph.input_names) != 1:
            raise InvalidOptionError("the model has several inputs: give calibration as {input name: array}")
        calibration = {graph.input_names[0]: calibration}
    missing = set(graph.input_names) - set(calibration)
    if missing:
        raise InvalidOptionError(f"calibration data lacks the inputs {sorted(missing)}")
    return {k: np.asarray(calibration[k]) for k in graph.input_names}


@dataclass
class ModelInputs:
    """What OBSPA propagates: inputs, and the model they run through."""

    run_model: onnx.ModelProto
    """The model at a static batch size, its BatchNorm statistics frozen from the inputs
    where the synthesis asks for it."""
    feeds: dict[str, np.ndarray]
    batch: int
    source: str


def model_inputs(
    model: onnx.ModelProto, analysis: Analysis, *, calibration: Mapping[str, ArrayLike] | ArrayLike | None,
    synth: str, samples: int, batch_size: int, seed: int, progress: bool | None, inversion_steps: int = 150,
) -> ModelInputs:
    """The calibration inputs, or ``samples`` inputs synthesised by ``synth``."""
    n = len(next(iter(calibration.values()))) if isinstance(calibration, Mapping) else (
        samples if calibration is None else len(calibration))
    batch = max(1, min(batch_size, n))
    graph = _run_graph(model, analysis, batch)
    feeds = _feeds(graph, calibration, samples, seed)
    if calibration is None and synth in ("inversion", "inversion-bn"):
        bar = tqdm(total=samples, desc="OBSPA input inversion", disable=_quiet(progress), leave=False)
        try:
            feeds = inverted_feeds(graph, feeds, batch, steps=inversion_steps, on_step=bar.update)
        except FrameworkError as exc:
            warnings.warn(f"OBSPA: input inversion is not possible ({exc}); using synth='bn'", stacklevel=3)
            synth = "bn"
        finally:
            bar.close()
    run_model = graph.model
    if calibration is None and synth in FROZEN_STATISTICS:
        run_model = with_initializers(run_model, bn_statistics(graph, feeds, batch))
    source = "calibration" if calibration is not None else f"synthetic ({synth})"
    return ModelInputs(run_model, feeds, batch, source)


def collect_hessians(inputs: ModelInputs, consumers: list[Consumer], progress: bool | None) -> HessianAccumulator:
    """Hessians of every consumer's input on the dense model."""
    acc = HessianAccumulator(consumers)
    acc.source = inputs.source
    runner = Runner(inputs.run_model, acc.activations)
    chunks = list(batches(inputs.feeds, inputs.batch))
    for feed in tqdm(chunks, desc="OBSPA inputs", disable=_quiet(progress), leave=False):
        acc.add(runner(feed))
    return acc


def _quiet(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _layer(c: Consumer, w: np.ndarray, h: np.ndarray, gid: int, damp: float) -> ObsLayer:
    m = c.matrix(w).astype(np.float64)
    if c.bias is not None:
        m = np.concatenate([m, np.zeros((len(m), 1))], axis=1)
    else:
        h = h[:-1, :-1]
    energy = float(np.einsum("od,de,oe->o", m, h, m) @ (c.out_scale if c.out_scale is not None else np.ones(len(m))))
    return ObsLayer(m, damped_inverse(h, damp), c.blocks[gid], c.out_scale, max(energy, 1e-30))


def order_groups(
    analysis: Analysis, consumers: list[Consumer], acc: HessianAccumulator, depth_of: dict[int, int],
    damp: float, progress: bool | None,
) -> tuple[dict[int, GroupOrder], dict[int, np.ndarray]]:
    """Greedy OBS removal order of every group (l1 order where a group has no consumer)."""
    weights = analysis.graph.initializers
    by_group: dict[int, list[int]] = {}
    for i, c in enumerate(consumers):
        for gid in c.blocks:
            by_group.setdefault(gid, []).append(i)
    fallback = score_groups(analysis, get_criterion("l1"))
    orders, scores = {}, {}
    bar = tqdm(total=sum(depth_of.values()), desc="OBSPA order", disable=_quiet(progress), leave=False)
    for g in analysis.groups:
        depth = depth_of[g.id]
        if g.id not in by_group:
            order = np.argsort(fallback[g.id], kind="stable")[:depth]
            orders[g.id] = GroupOrder(g.size, order, None, depth)
            scores[g.id] = fallback[g.id]
            bar.update(depth)
            continue
        layers = [_layer(consumers[i], weights[consumers[i].weight], acc.hessian(i), g.id, damp) for i in by_group[g.id]]
        order, costs, last = greedy_order(layers, g.size, depth, on_step=bar.update)
        relative = (costs / np.array([layer.energy for layer in layers])[None, :]).sum(axis=1)
        score = last.copy()
        score[order] = costs.sum(axis=1)
        orders[g.id] = GroupOrder(g.size, order, np.cumsum(relative), depth)
        scores[g.id] = score
    bar.close()
    return orders, scores


def compensated_weights(
    analysis: Analysis, consumers: list[Consumer], acc: HessianAccumulator, kept: dict[int, np.ndarray], damp: float,
) -> dict[str, np.ndarray]:
    """Full-size weights (and bias carriers) of every consumer after OBS compensation."""
    inits = analysis.graph.initializers
    out: dict[str, np.ndarray] = {}
    for i, c in enumerate(consumers):
        q = c.removed_columns(kept)
        if q.size == 0:
            continue
        weight = out.setdefault(c.weight, inits[c.weight].copy())
        m = c.matrix(inits[c.weight]).astype(np.float64)
        h = acc.hessian(i)
        if c.bias is not None:
            m = np.concatenate([m, np.zeros((len(m), 1))], axis=1)
        else:
            h = h[:-1, :-1]
        new = compensate(m, h, q, damp)
        c.put(weight, new[:, : c.d].astype(weight.dtype))
        if c.bias is not None:
            name, factor = c.bias
            carrier = out.setdefault(name, inits[name].copy())
            flat = carrier.reshape(-1)
            flat[c.rows] += (factor * new[:, -1]).astype(carrier.dtype)
    return out


def _write(pruned: onnx.ModelProto, analysis: Analysis, removed: np.ndarray, values: dict[str, np.ndarray]) -> None:
    view = surgery_view(analysis, removed)
    for tensor in pruned.graph.initializer:
        if tensor.name in values:
            array = values[tensor.name]
            for axis in range(array.ndim):
                keep = view.kept(tensor.name, axis) if analysis.graph.is_parameter(tensor.name) else None
                if keep is not None and len(keep) != array.shape[axis]:
                    array = np.take(array, keep, axis=axis)
            tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), tensor.name))


def _depths(
    analysis: Analysis, ratio: float | None, macs_target: float | None, allocation: str, max_ratio: float,
    min_keep: int, round_to: int,
) -> dict[int, int]:
    """How many channels of each group the greedy order must reach.

    A uniform allocation's counts do not depend on which channels go, so its ratio is
    found first (bisection on MACs) and only that many are ordered; a global allocation
    needs every group ordered as far as ``max_ratio`` allows.
    """
    limit = {g.id: max(0, min(math.floor(max_ratio * g.size + 1e-9), g.size - min(min_keep, g.size)))
             for g in analysis.groups}
    if allocation != "uniform":
        return limit
    blind = {g.id: GroupOrder(g.size, np.arange(limit[g.id]), None, limit[g.id]) for g in analysis.groups}
    kept, _ = allocate(blind, analysis, ratio=ratio, macs_target=macs_target, mode="uniform", round_to=round_to)
    return {g.id: g.size - len(kept[g.id]) for g in analysis.groups}


def prune_obspa(
    model: str | Path | onnx.ModelProto,
    *,
    ratio: float | None = None,
    macs_target: float | None = None,
    calibration: Mapping[str, ArrayLike] | ArrayLike | None = None,
    synth: str = "inversion-bn",
    samples: int | None = None,
    inversion_steps: int = 150,
    batch_size: int = 64,
    damp: float = 0.01,
    allocation: str = "global",
    compensation: str = "sequential",
    max_ratio: float = 0.9,
    min_keep: int = 1,
    round_to: int = 1,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    ignore: Iterable[str] = (),
    seed: int = 0,
    validate: bool = True,
    progress: bool | None = None,
) -> PruneResult:
    """Prune ``model`` by OBSPA: no fine-tuning, and no data unless ``calibration`` is given.

    :param ratio: fraction of the channels of every group to remove (``allocation="uniform"``)
        or of all channels (``"global"``); default 0.5 when no ``macs_target`` is given.
    :param macs_target: fraction of MACs to remove instead (reached by bisection).
    :param calibration: input batches ``{input name: array (N, ...)}`` (or one array for a
        single-input model); ``None`` synthesises ``samples`` inputs by ``synth``.
    :param synth: how data-free inputs are made (:mod:`spa_core.obspa.synth`):
        ``"inversion-bn"`` (the default: inputs optimised until every BatchNorm sees its
        running statistics, then propagated with the BatchNorm statistics frozen from them),
        ``"inversion"`` (the same without the freeze), ``"bn"`` (Gaussian noise, BatchNorms
        normalising by its batch statistics) or ``"gaussian"``. The default was chosen on a
        validation split (``reproductions/no_finetune.py``: mean validation accuracy 0.828
        against 0.824 / 0.781 / 0.168). Inversion needs gradients through the graph and
        falls back to ``"bn"`` with a warning when the ONNX executor lacks an operator.
    :param samples: synthetic inputs (default 128 for inversion, 256 otherwise).
    :param inversion_steps: Adam steps per batch of inverted inputs.
    :param batch_size: inputs per onnxruntime run, and per inversion batch (whose BatchNorm
        statistics are matched, so it should not be tiny).
    :param damp: Hessian dampening, a multiple of its mean diagonal.
    :param allocation: ``"global"`` (one threshold on each group's relative OBS error; the
        default) or ``"uniform"`` (same ratio per group). Global was chosen on a validation
        split (``reproductions/obspa_variants.py``): data-free, at 30 % and 50 % of the MACs,
        it kept 0.91 of dense accuracy on average against 0.76 for uniform (worst case 0.74
        against 0.27), at the price of ordering every group up to ``max_ratio``.
    :param compensation: ``"sequential"`` (every consumer re-fitted, in graph order, on the
        inputs of the model pruned so far, towards the dense model's outputs:
        :mod:`spa_core.obspa.sequential`) or ``"independent"`` (each consumer's OBS update
        from its dense inputs alone; one model run per batch instead of two per consumer input).
    :param max_ratio: most of a group that may be removed; ``min_keep`` channels always stay.
    :param progress: show progress bars (``None``: only on a terminal).
    """
    if allocation not in ("uniform", "global"):
        raise InvalidOptionError(f"allocation must be 'uniform' or 'global', got {allocation!r}")
    if compensation not in COMPENSATIONS:
        raise InvalidOptionError(f"compensation must be one of {', '.join(COMPENSATIONS)}, got {compensation!r}")
    if synth not in SYNTHESES:
        raise InvalidOptionError(f"synth must be one of {', '.join(SYNTHESES)}, got {synth!r}")
    if ratio is None and macs_target is None:
        ratio = 0.5
    for label, value in (("ratio", ratio), ("macs_target", macs_target)):
        if value is not None and not 0.0 <= value < 1.0:
            raise InvalidOptionError(f"{label} must be in [0, 1), got {value!r}")
    samples = DEFAULT_SAMPLES[synth] if samples is None else samples
    if not 0.0 <= max_ratio <= 1.0 or min_keep < 1 or round_to < 1 or damp < 0 or samples < 1 or inversion_steps < 0:
        raise InvalidOptionError("invalid max_ratio, min_keep, round_to, damp, samples or inversion_steps")
    timings = {}
    t0 = time.perf_counter()
    original = load_model(model)
    analysis = analyze_onnx(original, input_shapes, ignore)
    if not analysis.groups:
        raise UnprunableModelError("nothing to prune: every channel is behind a barrier")
    consumers = find_consumers(analysis)
    timings["analyse"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    inputs = model_inputs(original, analysis, calibration=calibration, synth=synth, samples=samples,
                          batch_size=batch_size, seed=seed, progress=progress, inversion_steps=inversion_steps)
    acc = collect_hessians(inputs, consumers, progress)
    timings["hessians"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    depth_of = _depths(analysis, ratio, macs_target, allocation, max_ratio, min_keep, round_to)
    orders, scores = order_groups(analysis, consumers, acc, depth_of, damp, progress)
    timings["order"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    kept, info = allocate(orders, analysis, ratio=ratio, macs_target=macs_target, mode=allocation, round_to=round_to)
    if compensation == "sequential":
        bar = tqdm(total=len(consumers), desc="OBSPA compensate", disable=_quiet(progress), leave=False)
        values = sequential_weights(inputs.run_model, analysis, consumers, inputs.feeds, kept, damp, inputs.batch,
                                    on_step=bar.update)
        bar.close()
    else:
        values = compensated_weights(analysis, consumers, acc, kept, damp)
    removed = removed_class_mask(analysis, kept)
    pruned, attributes = apply_removal(analysis, removed)
    _write(pruned, analysis, removed, values)
    options = {
        "criterion": "obspa",
        "ratio": ratio,
        "input_shapes": {k: list(v) for k, v in (input_shapes or {}).items()},
        "ignore": sorted(ignore),
        "obspa": {
            "macs_target": macs_target, "data": acc.source,
            "samples": samples if calibration is None else None, "damp": damp, "allocation": allocation,
            "compensation": compensation,
            "max_ratio": max_ratio, "min_keep": min_keep, "round_to": round_to, "seed": seed,
            "consumers": len(consumers), **info,
        },
    }
    plan = build_plan(analysis, kept, scores, options)
    plan.attributes = attributes
    if validate:
        check_model(pruned, analysis.graph.model)
    view = surgery_view(analysis, removed)
    report = build_report(analysis, view, {gid: len(k) for gid, k in kept.items()})
    timings["compensate"] = time.perf_counter() - t3
    report.timings = timings
    extras = {"obspa": options["obspa"], "compensated": values}
    return PruneResult(onnx=pruned, plan=plan, report=report, analysis=analysis, removed=removed, extras=extras)
