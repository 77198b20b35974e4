"""Running ONNX models in onnxruntime: random inputs, exposing intermediate values."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from .io import external_weights, needs_external_data

_NP_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.BOOL: np.bool_,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.INT8: np.int8,
}


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def random_inputs(
    model: onnx.ModelProto,
    shapes: Mapping[str, Sequence[int]] | None = None,
    dtypes: Mapping[str, int] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random feeds for every graph input: normal floats, small non-negative integers."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in graph_inputs(model):
        tt = vi.type.tensor_type
        if shapes and vi.name in shapes:
            shape = tuple(shapes[vi.name])
        else:
            shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim)
        elem = (dtypes or {}).get(vi.name, tt.elem_type)
        np_type = _NP_TYPES.get(elem, np.float32)
        if np.issubdtype(np_type, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(np_type)
        elif np_type is np.bool_:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[vi.name] = rng.integers(0, 8, shape).astype(np_type)
    return feeds


def session(model: onnx.ModelProto, threads: int | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    if not needs_external_data(model):
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    # past protobuf's 2 GiB limit the model cannot be serialised whole: onnxruntime reads it
    # from a file whose weights lie in an external data file (loaded when the session starts);
    # graph optimisations and the memory arena would hold further copies of the weights
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.enable_cpu_mem_arena = False
    with tempfile.TemporaryDirectory(prefix="spa-ort-") as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(external_weights(model, Path(folder) / "model.onnx.data", "model.onnx.data").SerializeToString())
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_model(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    extra_outputs: Sequence[str] = (),
    dtypes: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``model``; ``extra_outputs`` (intermediate values) are exposed as outputs too.

    The extra outputs are added to ``model`` itself while the session is built and removed
    again: a copy of the model would copy its weights (gigabytes for the largest models).
    """
    outputs = model.graph.output
    count = len(outputs)
    present = {o.name for o in outputs}
    try:
        for name in extra_outputs:
            if name not in present:
                present.add(name)
                elem = (dtypes or {}).get(name)
                outputs.append(onnx.helper.make_tensor_value_info(name, elem, None) if elem
                               else onnx.ValueInfoProto(name=name))
        sess = session(model)
    finally:
        del outputs[count:]
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, dict(feeds))
    return dict(zip(names, outs))
