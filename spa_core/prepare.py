"""Prepare an ONNX model for analysis: static shapes and folded shape computations.

Steps, each needed by mask propagation:

1. Constant nodes become initializers (one place to look for constant values), and so
   does an ``Identity`` of an initializer: exporters deduplicate weights that merely
   start out equal (fresh BatchNorm parameters) into ``Identity`` copies of one
   initializer, which would otherwise tie unrelated layers into one channel group.
2. Graph inputs get static shapes: those the user gave, and 1 for a symbolic batch
   dimension (axis 0). Any other dynamic dimension is an error naming the input.
3. Shape inference, then folding of shape sub-graphs (``Shape -> Gather -> Concat ->
   Reshape``) into constants, so every Reshape/Expand target is a known array;
   repeated while it folds something, since a folded Reshape target makes the shapes
   after it static (tf2onnx's Einsum lowering chains several such Reshapes).
   Only integer computations (and small float ones derived from them) are folded:
   weights are never folded, so their names survive.
4. Shapes that inference could not determine are read from an onnxruntime run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import InvalidModelError, InvalidOptionError
from .graph import FLOAT_TYPES, Graph
from .runtime import random_inputs, run_model
from .shape_inference import infer_shapes

log = logging.getLogger(__name__)

InputShapes = Mapping[str, Sequence[int]]

# Ops whose outputs only describe shapes; folded whenever their input shape is static.
_SHAPE_OPS = {"Shape", "Size"}
_MAX_FOLD_ELEMENTS = 1 << 16
_MAX_FOLD_ROUNDS = 8


def prepare(model: onnx.ModelProto, input_shapes: InputShapes | None = None) -> Graph:
    """Return a :class:`Graph` of a copy of ``model`` with static shapes and folded shapes."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    check_arity(m)
    _drop_initializer_inputs(m)
    weights = {t.name for t in m.graph.initializer if t.data_type in FLOAT_TYPES and len(t.dims) > 0}
    _constants_to_initializers(m)
    _identity_copies_to_initializers(m)
    _set_input_shapes(m, dict(input_shapes or {}))
    m = _infer(m)
    for _ in range(_MAX_FOLD_ROUNDS):  # a fold can make shapes further on static: repeat
        count = len(m.graph.node)
        m = _infer(_fold_shape_computations(m, weights))
        if len(m.graph.node) == count:
            break
    graph = Graph(m)
    graph.shapes, graph.dtypes = _collect_shapes(m)
    _fill_missing_shapes(graph)
    _record_output_shapes(graph)
    return graph


def _record_output_shapes(graph: Graph) -> None:
    """Give graph outputs their static shapes (some checkers require a shape field)."""
    for out in graph.model.graph.output:
        tt = out.type.tensor_type
        if out.name in graph.shapes and not tt.HasField("shape"):
            tt.shape.SetInParent()
            for d in graph.shapes[out.name]:
                tt.shape.dim.add().dim_value = d


def _drop_initializer_inputs(m: onnx.ModelProto) -> None:
    """Old exporters list initializers as graph inputs too; keep only real inputs."""
    inits = {t.name for t in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(keep)


def _constants_to_initializers(m: onnx.ModelProto) -> None:
    kept = []
    for node in m.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1:
            array = _constant_value(node)
            if array is not None:
                m.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
                continue
        kept.append(node)
    del m.graph.node[:]
    m.graph.node.extend(kept)


def _identity_copies_to_initializers(m: onnx.ModelProto) -> None:
    """``y = Identity(w)`` of an initializer ``w`` becomes an initializer ``y`` of its own.

    The function is unchanged; the copy can now be pruned with its own consumers. A
    graph output stays a node (outputs keep their producer).
    """
    inits = {t.name: t for t in m.graph.initializer}
    outputs = {o.name for o in m.graph.output}
    kept = []
    for node in m.graph.node:
        source = node.input[0] if node.input else ""
        if (node.op_type == "Identity" and node.domain in ("", "ai.onnx") and source in inits
                and node.output[0] not in outputs):
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[source])
            copy.name = node.output[0]
            m.graph.initializer.append(copy)
            continue
        kept.append(node)
    del m.graph.node[:]
    m.graph.node.extend(kept)


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    attr = node.attribute[0]
    if attr.name == "value":
        return numpy_helper.to_array(attr.t)
    if attr.name == "value_float":
        return np.array(attr.f, dtype=np.float32)
    if attr.name == "value_floats":
        return np.array(list(attr.floats), dtype=np.float32)
    if attr.name == "value_int":
        return np.array(attr.i, dtype=np.int64)
    if attr.name == "value_ints":
        return np.array(list(attr.ints), dtype=np.int64)
    return None


def _set_input_shapes(m: onnx.ModelProto, given: dict[str, Sequence[int]]) -> None:
    inputs = {i.name: i for i in m.graph.input}
    if len(given) == 1 and "" in given:
        if len(inputs) != 1:
            raise InvalidOptionError(
                f"the model has {len(inputs)} inputs ({', '.join(inputs)}); "
                "name each shape as NAME:D0,D1,..."
            )
        given = {next(iter(inputs)): given[""]}
    for name in given:
        if name not in inputs:
            raise InvalidOptionError(
                f"--input-shape names '{name}', but the model's inputs are: {', '.join(inputs)}"
            )
    for name, vi in inputs.items():
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            if name not in given:
                raise InvalidOptionError(f"input '{name}' has no shape; give --input-shape {name}:D0,D1,...")
            tt.shape.SetInParent()
        dims = tt.shape.dim
        if name in given:
            shape = [int(d) for d in given[name]]
            if any(d <= 0 for d in shape):
                raise InvalidOptionError(f"input shape of '{name}' must be positive, got {shape}")
            if len(dims) and len(dims) != len(shape):
                raise InvalidOptionError(
                    f"input '{name}' has rank {len(dims)}, but the given shape {shape} has rank {len(shape)}"
                )
            del dims[:]
            for d in shape:
                dims.add().dim_value = d
            continue
        for axis, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            if axis == 0:
                d.Clear()
                d.dim_value = 1
                continue
            label = d.dim_param or "?"
            raise InvalidOptionError(
                f"input '{name}' has a dynamic dimension '{label}' at axis {axis}; "
                f"give a static shape with --input-shape {name}:D0,D1,..."
            )


def check_arity(m: onnx.ModelProto) -> None:
    """Reject a standard operator with more inputs or outputs than its schema allows.

    A rule ties only the inputs an operator defines; an extra one (tf2onnx once gave a
    Conv a fourth input, a second bias) would keep its width while the rest is pruned.
    """
    opsets = {o.domain or "": o.version for o in m.opset_import}
    version = opsets.get("", opsets.get("ai.onnx"))
    if version is None:
        return
    for node in m.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, version, "")
        except onnx.defs.SchemaError:
            continue  # an unknown operator is a barrier, reported by the analysis
        counts = (("inputs", len(node.input), schema.max_input), ("outputs", len(node.output), schema.max_output))
        for kind, count, most in counts:
            if count > most:
                name = node.name or (node.output[0] if node.output else "")
                raise InvalidModelError(
                    f"node {name!r} ({node.op_type}) has {count} {kind}; "
                    f"opset {version} allows at most {most}: the model is not valid ONNX"
                )


def _infer(m: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception as exc:  # inference on odd models may fail; shapes then come from a run
        log.debug("shape inference failed: %s", exc)
        return m


def _collect_shapes(m: onnx.ModelProto) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, int] = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        tt = vi.type.tensor_type
        if tt.elem_type:
            dtypes[vi.name] = tt.elem_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    for t in m.graph.initializer:
        shapes[t.name] = tuple(int(d) for d in t.dims)
        dtypes[t.name] = t.data_type
    return shapes, dtypes


def _fold_shape_computations(m: onnx.ModelProto, weights: set[str]) -> onnx.ModelProto:
    """Replace nodes that compute shapes from static shapes by initializers.

    ``weights`` (the model's own float initializers) are never folded into anything,
    so their names survive; Constant-node values and shape arithmetic are folded.
    """
    from onnx.reference import ReferenceEvaluator

    shapes, dtypes = _collect_shapes(m)
    # weights are never folded, so their values are not needed (nor a copy of them)
    original_float = {t.name for t in m.graph.initializer if t.name in weights and math.prod(t.dims) > 1}
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer
                                     if t.name not in original_float}
    folded: set[str] = set()
    kept_nodes = []
    for node in m.graph.node:
        value = None
        if node.domain in ("", "ai.onnx") and not _has_subgraph(node):
            if node.op_type in _SHAPE_OPS and node.input[0] in shapes:
                value = _eval_shape_op(node, shapes[node.input[0]])
            elif _foldable(node, consts, original_float):
                try:
                    feeds = {n: consts[n] for n in node.input if n}
                    value = ReferenceEvaluator(node).run(None, feeds)
                    if any(np.asarray(v).size > _MAX_FOLD_ELEMENTS for v in value):
                        value = None
                except Exception as exc:
                    log.debug("not folding %s: %s", node.op_type, exc)
                    value = None
        if value is None:
            kept_nodes.append(node)
            continue
        outputs = value if isinstance(value, list) else [value]
        for name, v in zip(node.output, outputs):
            if not name:
                continue
            arr = np.asarray(v)
            consts[name] = arr
            folded.add(name)
            m.graph.initializer.append(numpy_helper.from_array(arr, name))
    del m.graph.node[:]
    m.graph.node.extend(kept_nodes)
    _remove_unused(m)
    return m


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def _foldable(node: onnx.NodeProto, consts: dict[str, np.ndarray], original_float: set[str]) -> bool:
    names = [n for n in node.input if n]
    if not names or any(n not in consts for n in names):
        return node.op_type == "ConstantOfShape" and bool(names) and names[0] in consts
    # weights (non-scalar float initializers of the original model) are never folded
    return not any(n in original_float for n in names)


def _eval_shape_op(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    if node.op_type == "Size":
        return np.array(int(np.prod(shape)), dtype=np.int64)
    start, end = 0, None
    for a in node.attribute:
        if a.name == "start":
            start = a.i
        elif a.name == "end":
            end = a.i
    return np.array(shape[start:end], dtype=np.int64)


def _remove_unused(m: onnx.ModelProto) -> None:
    """Drop nodes and initializers that no longer reach a graph output."""
    needed = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for g in _subgraph_refs(node):
            needed |= g
    live = []
    for node in reversed(m.graph.node):
        if any(o in needed for o in node.output if o):
            live.append(node)
            needed.update(n for n in node.input if n)
    live.reverse()
    del m.graph.node[:]
    m.graph.node.extend(live)
    # deleted in place: re-adding the kept ones would copy every weight into the model's
    # protobuf arena, which is only freed with the model (one more copy per folding round)
    unused = [i for i, t in enumerate(m.graph.initializer) if t.name not in needed]
    for i in reversed(unused):
        del m.graph.initializer[i]


def _subgraph_refs(node: onnx.NodeProto) -> list[set[str]]:
    """Names a node's subgraphs read from the enclosing scope (all names they use)."""
    refs = []
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            names: set[str] = set()
            for n in g.node:
                names.update(i for i in n.input if i)
                for sub in _subgraph_refs(n):
                    names |= sub
            refs.append(names)
    return refs


def subgraph_outer_names(node: onnx.NodeProto) -> set[str]:
    """All value names used inside ``node``'s subgraphs (outer-scope captures among them)."""
    out: set[str] = set()
    for s in _subgraph_refs(node):
        out |= s
    return out


def _fill_missing_shapes(graph: Graph) -> None:
    """Read the shapes inference could not determine from one onnxruntime run."""
    missing = [o for n in graph.model.graph.node for o in n.output if o and o not in graph.shapes]
    if not missing:
        return
    try:
        feeds = random_inputs(graph.model, graph.shapes, graph.dtypes)
        values = run_model(graph.model, feeds, extra_outputs=missing, dtypes=graph.dtypes)
    except Exception as exc:
        log.debug("could not run the model to read shapes: %s", exc)
        return
    for name, value in values.items():
        if name in missing and value is not None:
            graph.shapes[name] = tuple(int(d) for d in np.shape(value))
            graph.dtypes.setdefault(name, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype))


def check_static_inputs(graph: Graph) -> None:
    for name in graph.input_names:
        if name not in graph.shapes:
            raise InvalidModelError(f"input '{name}' has no static shape after preparation")
