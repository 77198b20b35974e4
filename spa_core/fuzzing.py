"""Random valid networks for fuzzing the engine (issue: never silently wrong).

:func:`random_network` builds a random DAG of Conv (plain, grouped, depthwise),
Gemm/MatMul, BatchNorm, LayerNorm, activations, residual Add/Mul with broadcasting,
Concat/Split/Slice, Reshape/Flatten, Transpose, pooling and Resize, with random
widths, from a seed. :func:`check_network` prunes it and says whether the oracle held
or the pruning refused with a reason. ``hypothesis`` drives the seeds in the tests;
``benchmarks/fuzz.py`` runs thousands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H = helper.make_node


@dataclass
class _Builder:
    rng: np.random.Generator
    nodes: list = field(default_factory=list)
    inits: dict = field(default_factory=dict)
    tensors4: list = field(default_factory=list)  # (name, (N, C, H, W))
    tensors2: list = field(default_factory=list)  # (name, (N, F))
    tensors3: list = field(default_factory=list)  # (name, (N, S, F))
    count: int = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def weight(self, *shape: int, positive: bool = False) -> str:
        name = self.name("w")
        value = self.rng.standard_normal(shape) / np.sqrt(max(1, np.prod(shape[1:])))
        self.inits[name] = (np.abs(value) + 0.5 if positive else value).astype(np.float32)
        return name

    def const(self, value: np.ndarray) -> str:
        name = self.name("k")
        self.inits[name] = value
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(H(op, inputs, [out], **attrs))
        return out

    def pick(self, pool: list):
        """Mostly the newest tensor (deep chains), sometimes any (branches and skips)."""
        if self.rng.random() < 0.6:
            return pool[-1]
        return pool[int(self.rng.integers(len(pool)))]


def _conv(b: _Builder) -> None:
    x, (n, c, h, w) = b.pick(b.tensors4)
    kind = b.rng.choice(["plain", "plain", "depthwise", "grouped"])
    k = int(b.rng.choice([1, 3]))
    stride = 2 if (h >= 4 and b.rng.random() < 0.25) else 1
    if kind == "depthwise":
        mult = int(b.rng.choice([1, 2]))
        groups, out_c = c, c * mult
    elif kind == "grouped" and c % 2 == 0:
        groups = int(b.rng.choice([g for g in (2, 4) if c % g == 0]))
        out_c = groups * int(b.rng.integers(1, 5))
    else:
        groups, out_c = 1, int(b.rng.integers(2, 17))
    wt = b.weight(out_c, c // groups, k, k)
    inputs = [x, wt] + ([b.weight(out_c)] if b.rng.random() < 0.5 else [])
    y = b.node("Conv", inputs, group=groups, pads=[k // 2] * 4, strides=[stride, stride])
    hh, ww = (h + stride - 1) // stride, (w + stride - 1) // stride
    if b.rng.random() < 0.6:
        y = b.node("BatchNormalization", [y, b.weight(out_c), b.weight(out_c), b.weight(out_c), b.weight(out_c, positive=True)])
    y = _activation(b, y)
    b.tensors4.append((y, (n, out_c, hh, ww)))


def _activation(b: _Builder, y: str) -> str:
    op = b.rng.choice(["Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSwish", "Identity", "Softplus"])
    return b.node(str(op), [y])


def _residual(b: _Builder) -> None:
    x, shape = b.pick(b.tensors4)
    same = [t for t in b.tensors4 if t[1] == shape and t[0] != x]
    op = str(b.rng.choice(["Add", "Mul", "Sub", "Max"]))
    if same and b.rng.random() < 0.7:
        other = b.pick(same)[0]
    else:  # per-channel constant, broadcast
        other = b.weight(1, shape[1], 1, 1) if b.rng.random() < 0.5 else b.weight(shape[1], 1, 1)
    b.tensors4.append((b.node(op, [x, other]), shape))


def _concat(b: _Builder) -> None:
    x, (n, c, h, w) = b.pick(b.tensors4)
    same = [t for t in b.tensors4 if t[1][2:] == (h, w)]
    y, (_, c2, _, _) = b.pick(same)
    b.tensors4.append((b.node("Concat", [x, y], axis=1), (n, c + c2, h, w)))


def _split(b: _Builder) -> None:
    x, (n, c, h, w) = b.pick(b.tensors4)
    if c < 2:
        return
    first = int(b.rng.integers(1, c))
    outs = [b.name("split"), b.name("split")]
    b.nodes.append(H("Split", [x, b.const(np.array([first, c - first], dtype=np.int64))], outs, axis=1))
    b.tensors4 += [(outs[0], (n, first, h, w)), (outs[1], (n, c - first, h, w))]


def _slice(b: _Builder) -> None:
    x, (n, c, h, w) = b.pick(b.tensors4)
    if c < 3:
        return
    start = int(b.rng.integers(0, c - 1))
    end = int(b.rng.integers(start + 1, c + 1))
    ins = [x, b.const(np.array([start], np.int64)), b.const(np.array([end], np.int64)), b.const(np.array([1], np.int64))]
    b.tensors4.append((b.node("Slice", ins), (n, end - start, h, w)))


def _pool(b: _Builder) -> None:
    x, (n, c, h, w) = b.pick(b.tensors4)
    if h >= 2 and w >= 2 and b.rng.random() < 0.6:
        op = str(b.rng.choice(["MaxPool", "AveragePool"]))
        b.tensors4.append((b.node(op, [x], kernel_shape=[2, 2], strides=[2, 2]), (n, c, h // 2, w // 2)))
    else:
        op = str(b.rng.choice(["GlobalAveragePool", "GlobalMaxPool"]))
        b.tensors4.append((b.node(op, [x]), (n, c, 1, 1)))


def _resize(b: _Builder) -> None:
    x, (n, c, h, w) = b.pick(b.tensors4)
    if h > 8:
        return
    scales = b.const(np.array([1, 1, 2, 2], np.float32))
    b.tensors4.append((b.node("Resize", [x, "", scales], mode="nearest"), (n, c, 2 * h, 2 * w)))


def _channels_last(b: _Builder) -> None:
    """NCHW -> NHWC -> scale per channel (MatMul or Mul) -> NCHW."""
    x, (n, c, h, w) = b.pick(b.tensors4)
    t = b.node("Transpose", [x], perm=[0, 2, 3, 1])
    if b.rng.random() < 0.5:
        out_c = int(b.rng.integers(2, 13))
        t = b.node("MatMul", [t, b.weight(c, out_c)])
    else:
        out_c = c
        t = b.node("Mul", [t, b.weight(c)])
    b.tensors4.append((b.node("Transpose", [t], perm=[0, 3, 1, 2]), (n, out_c, h, w)))


def _to_tokens(b: _Builder) -> None:
    """(N, C, H, W) -> (N, H*W, C) tokens, optional LayerNorm, MatMul projection."""
    x, (n, c, h, w) = b.pick(b.tensors4)
    r = b.node("Reshape", [x, b.const(np.array([n, c, h * w], np.int64))])
    t = b.node("Transpose", [r], perm=[0, 2, 1])
    if b.rng.random() < 0.5:
        t = b.node("LayerNormalization", [t, b.weight(c), b.weight(c)], axis=-1)
    d = int(b.rng.integers(2, 17))
    y = b.node("Add", [b.node("MatMul", [t, b.weight(c, d)]), b.weight(d)])
    b.tensors3.append((_activation(b, y), (n, h * w, d)))


def _heads(b: _Builder) -> None:
    """(N, S, F) -> split into heads -> per-head scale -> merge -> projection."""
    x, (n, s, f) = b.pick(b.tensors3)
    heads = int(b.rng.choice([2, 3]))
    hd = int(b.rng.integers(1, 5))
    q = b.node("MatMul", [x, b.weight(f, heads * hd)])
    r = b.node("Reshape", [q, b.const(np.array([n, s, heads, hd], np.int64))])
    t = b.node("Transpose", [r], perm=[0, 2, 1, 3])
    a = b.node("Softmax", [b.node("MatMul", [t, b.node("Transpose", [t], perm=[0, 1, 3, 2])])], axis=-1)
    o = b.node("Transpose", [b.node("MatMul", [a, t])], perm=[0, 2, 1, 3])
    m = b.node("Reshape", [o, b.const(np.array([n, s, heads * hd], np.int64))])
    d = int(b.rng.integers(2, 13))
    b.tensors3.append((b.node("MatMul", [m, b.weight(heads * hd, d)]), (n, s, d)))


def _head(b: _Builder) -> None:
    """Flatten + Gemm (a classifier head) from a 4-D or 3-D tensor."""
    pool = b.tensors4 + b.tensors3
    x, shape = b.pick(pool)
    features = int(np.prod(shape[1:]))
    if features > 4096:
        return
    f = b.node("Flatten", [x], axis=1)
    units = int(b.rng.integers(2, 17))
    y = b.node("Gemm", [f, b.weight(units, features), b.weight(units)], transB=1)
    b.tensors2.append((_activation(b, y), (shape[0], units)))


def _dense(b: _Builder) -> None:
    x, (n, f) = b.pick(b.tensors2)
    units = int(b.rng.integers(2, 17))
    y = b.node("Gemm", [x, b.weight(f, units), b.weight(units)])
    b.tensors2.append((_activation(b, y), (n, units)))


STEPS: list[tuple[Callable[[_Builder], None], float, str]] = [
    (_conv, 4.0, "4"), (_residual, 2.0, "4"), (_concat, 1.5, "4"), (_split, 1.0, "4"), (_slice, 1.0, "4"),
    (_pool, 1.0, "4"), (_resize, 0.5, "4"), (_channels_last, 1.0, "4"), (_to_tokens, 0.7, "4"),
    (_heads, 0.7, "3"), (_head, 0.7, "any"), (_dense, 1.0, "2"),
]


def random_network(seed: int, max_steps: int = 12) -> onnx.ModelProto:
    """A random valid network (opset 17) with input ``x`` of shape (2, C, H, W)."""
    rng = np.random.default_rng(seed)
    b = _Builder(rng)
    c, size = int(rng.integers(1, 5)), int(rng.choice([4, 8]))
    b.tensors4.append(("x", (2, c, size, size)))
    for _ in range(int(rng.integers(3, max_steps + 1))):
        usable = [(fn, w) for fn, w, need in STEPS if need == "any" or getattr(b, f"tensors{need}")]
        weights = np.array([w for _, w in usable])
        fn = usable[int(rng.choice(len(usable), p=weights / weights.sum()))][0]
        fn(b)
    produced = {o for n in b.nodes for o in n.output}
    consumed = {i for n in b.nodes for i in n.input}
    dangling = [(t, s) for t, s in b.tensors4 + b.tensors3 + b.tensors2 if t in produced and t not in consumed]
    outputs = []
    for t, shape in dangling:  # a readout layer, so the last layers' channels are prunable too
        if len(shape) == 4:
            t = b.node("Flatten", [b.node("GlobalAveragePool", [t])], axis=1)
        elif len(shape) == 3:
            t = b.node("ReduceMean", [t], axes=[1], keepdims=0)
        outputs.append(b.node("MatMul", [t, b.weight(shape[-1] if len(shape) != 4 else shape[1], 3)]))
    if not outputs:
        outputs = [b.nodes[-1].output[0]] if b.nodes else ["x"]
    graph = helper.make_graph(
        b.nodes, f"fuzz{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, size, size])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in b.inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@dataclass
class FuzzOutcome:
    seed: int
    status: str  # "ok", "refused", "mismatch", "error"
    groups: int = 0
    error: float = 0.0
    reason: str = ""


def check_network(seed: int, rtol: float = 1e-4) -> FuzzOutcome:
    """Prune network ``seed`` with seeded random options; classify the outcome."""
    from .api import prune_onnx
    from .errors import UnprunableModelError
    from .oracle import oracle_error

    rng = np.random.default_rng(seed + 7919)
    model = random_network(seed)
    options = dict(
        ratio=float(rng.choice([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99])),
        criterion=str(rng.choice(["l1", "l2", "random"])),
        global_ranking=bool(rng.random() < 0.3),
        round_to=int(rng.choice([1, 1, 2, 4])),
        seed=seed,
    )
    try:
        result = prune_onnx(model, **options)
    except UnprunableModelError as exc:
        return FuzzOutcome(seed, "refused", reason=str(exc)[:120])
    except Exception as exc:  # anything else is a bug
        return FuzzOutcome(seed, "error", reason=f"{type(exc).__name__}: {str(exc)[:200]}")
    err = oracle_error(result.analysis, result.removed, result.onnx, seed=seed)
    status = "ok" if err <= rtol else "mismatch"
    return FuzzOutcome(seed, status, len(result.analysis.groups), err, f"options={options}")
