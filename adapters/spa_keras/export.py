"""Export a Keras model to ONNX with tf2onnx, mapping every initializer to its weights.

Steps:

1. fill the model's float weights with distinct random *probe* values (restored after);
2. convert with ``tf2onnx.convert.from_keras`` (NHWC input behind a Transpose, BatchNorm
   folded into the convolution before it where tf2onnx can);
3. recognise each initializer by value (:mod:`spa_keras.mapping`) and rename it after
   the weight it came from (``conv1/kernel``, ``conv1/kernel*bn1`` when folded);
4. write the real weights back through the mapping;
5. check the ONNX model against the Keras model on a random input.

Because the graph is traced with probe weights, it never depends on the real values:
zero biases keep their Add, equal constants are not merged, and each initializer has
exactly one Keras origin.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from spa_core.errors import FrameworkError
from spa_core.types import ExportedModel

from . import inputs as model_inputs
from .mapping import InitializerSource, Matcher, name_hints
from .terms import Term, WeightRef, layer_terms, term_builders
from .tf_ops import (
    custom_op_handlers,
    internalise_external_tensors,
    lean_conversion,
    numpy_product_alias,
    plain_convolutions,
    split_extra_conv_bias,
)
from .walk import layer_weights, read_weights, require_graph_model

log = logging.getLogger(__name__)
DEFAULT_OPSET = 17
PROBE_SEED = 20240917
LARGE_MODEL_BYTES = 1 << 29
"""Weights above this size are converted by tf2onnx's large-model path (see :func:`_tf2onnx`)."""
COLLECT_GARBAGE_BYTES = 1 << 26
"""Weights above this size have tf2onnx's dead copies collected after every optimiser pass
(see :func:`~spa_keras.tf_ops.lean_conversion`); below it the collections cost more time
than the copies cost memory."""


def export(model: Any, example_inputs: Any, options: Mapping[str, Any]) -> ExportedModel:
    """Export ``model`` (never modified) and map its initializers to Keras weights."""
    require_graph_model(model)  # fail before the slow part: a subclassed model cannot come back
    shapes = model_inputs.static_shapes(model, example_inputs, options)
    opset = int(options.get("opset", DEFAULT_OPSET))
    real = read_weights(model)
    probe = _probe_values(real)
    weight_bytes = sum(v.nbytes for v in real.values())
    large = options.get("large_model")
    if large is None:
        large = weight_bytes > LARGE_MODEL_BYTES
    lean = lean_conversion(collect_garbage=weight_bytes > COLLECT_GARBAGE_BYTES)
    with _weights_set_to(model, probe, real), plain_convolutions(), lean:
        proto = _tf2onnx(model, shapes, opset, large_model=bool(large))
    lws = layer_weights(model)
    builders = term_builders()
    terms: list[Term] = [t for lw in lws for t in layer_terms(lw, builders)]
    sources, unmatched = _match_initializers(proto, Matcher(terms, probe))
    sources = _rename(proto, sources)
    _write_back(proto, sources, real)
    if options.get("verify", True):
        _verify(model, proto, shapes, example_inputs, unmatched)
    folded = {s.scale.primary.layer: s.term.primary.layer for s in sources.values() if s.scale is not None}
    return ExportedModel(
        onnx=proto,
        framework="keras",
        input_shapes=shapes,
        parameter_map={name: s.binding() for name, s in sources.items()},
        extras={
            "sources": sources,
            "folded_bn": folded,
            "unmatched": unmatched,
            "output_names": [o.name for o in proto.graph.output],
        },
    )


# ---------------------------------------------------------------- probe weights
def _probe_values(real: Mapping[WeightRef, np.ndarray]) -> dict[WeightRef, np.ndarray]:
    rng = np.random.default_rng(PROBE_SEED)
    return {ref: rng.uniform(0.5, 1.5, size=v.shape).astype(v.dtype) for ref, v in real.items()}


class _weights_set_to:
    """Context manager: the model holds ``values`` inside, its own weights again after."""

    def __init__(self, model: Any, values: Mapping[WeightRef, np.ndarray], restore: Mapping[WeightRef, np.ndarray]):
        self._variables = _variables(model)
        self._values = values
        self._restore = restore

    def __enter__(self) -> None:
        for ref, value in self._values.items():
            self._variables[ref].assign(value)

    def __exit__(self, *exc: object) -> None:
        for ref, value in self._restore.items():
            self._variables[ref].assign(value)


def _variables(model: Any) -> dict[WeightRef, Any]:
    return {ref: lw.layer.weights[ref.index] for lw in layer_weights(model) for ref in lw.refs.values()}


# ---------------------------------------------------------------- tf2onnx
def _tf2onnx(model: Any, shapes: Mapping[str, tuple[int, ...]], opset: int, large_model: bool = False) -> onnx.ModelProto:
    """The ONNX model of ``model`` (holding its current weights), converted by tf2onnx.

    ``large_model`` takes tf2onnx's path for models over 2 GB, for its memory: it skips
    Grappler (whose serialised copies of the frozen graph made the peak about 22 times the
    weights: ConvNeXtXLarge's 1.4 GB did not fit in 24 GiB; ConvNeXtLarge peaked at 18.7 GB) and keeps the constants out
    of the TensorFlow graph it imports. The tensors come back as external data and are
    moved into the model here.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import tf2onnx
    from keras.src.models.functional import Functional

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    specs = []
    for tensor, (name, shape) in zip(model.inputs, shapes.items()):
        specs.append(tf.TensorSpec(shape, tf.as_dtype(str(tensor.dtype)), name=name))
    if not isinstance(model, Functional):  # tf2onnx reads output names the Functional way
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    try:
        with numpy_product_alias():
            proto, storage = tf2onnx.convert.from_keras(
                model, input_signature=specs, opset=opset, custom_op_handlers=custom_op_handlers(),
                large_model=large_model,
            )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FrameworkError(f"tf2onnx could not convert the Keras model: {first}") from exc
    if storage is not None:
        internalise_external_tensors(proto, storage.name_to_tensor_data)
    split_extra_conv_bias(proto)
    return proto


# ---------------------------------------------------------------- mapping
def _consumer_names(proto: onnx.ModelProto) -> dict[str, list[str]]:
    consumers: dict[str, list[str]] = defaultdict(list)
    for node in proto.graph.node:
        for name in node.input:
            consumers[name].append(node.name)
    return consumers


def _match_initializers(proto: onnx.ModelProto, matcher: Matcher) -> tuple[dict[str, InitializerSource], list[str]]:
    consumers = _consumer_names(proto)
    sources: dict[str, InitializerSource] = {}
    unmatched: list[str] = []
    for init in proto.graph.initializer:
        if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            continue
        value = numpy_helper.to_array(init)
        source = matcher.match(value, name_hints([init.name, *consumers.get(init.name, [])]))
        if source is None:
            unmatched.append(init.name)
        else:
            sources[init.name] = source
    return sources, unmatched


def _rename(proto: onnx.ModelProto, sources: dict[str, InitializerSource]) -> dict[str, InitializerSource]:
    """Name each mapped initializer after its weight (unique in the graph)."""
    taken = {v for n in proto.graph.node for v in [*n.input, *n.output]}
    taken |= {i.name for i in proto.graph.input} | {o.name for o in proto.graph.output}
    taken |= {i.name for i in proto.graph.initializer}
    renames: dict[str, str] = {}
    for old, source in sources.items():
        base = source.label
        new, k = base, 1
        while new in taken and new != old:
            k += 1
            new = f"{base}#{k}"
        taken.add(new)
        renames[old] = new
    for init in proto.graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    return {renames[old]: s for old, s in sources.items()}


def _write_back(proto: onnx.ModelProto, sources: Mapping[str, InitializerSource], real: Mapping[WeightRef, np.ndarray]) -> None:
    for init in proto.graph.initializer:
        source = sources.get(init.name)
        if source is None:
            continue
        value = source.evaluate(real)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        init.CopyFrom(numpy_helper.from_array(value.astype(dtype), init.name))


# ---------------------------------------------------------------- verification
def _verify(
    model: Any, proto: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]], example_inputs: Any, unmatched: list[str]
) -> None:
    """The exported model must compute what the Keras model computes, on the user's example
    inputs when given (the values the model is meant for), else on seeded random ones."""
    import onnxruntime as ort

    feeds = model_inputs.random_inputs(model, shapes)
    if example_inputs is not None:
        given = model_inputs.as_arrays(example_inputs)
        feeds = {name: np.asarray(a, dtype=feeds[name].dtype) for name, a in zip(feeds, given)}
    keras_in = list(feeds.values())
    expected = model(keras_in if len(keras_in) > 1 else keras_in[0], training=False)
    expected = [np.asarray(e) for e in (expected if isinstance(expected, list | tuple) else [expected])]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    for e, g in zip(expected, got):
        scale = max(1.0, float(np.max(np.abs(e))) if e.size else 1.0)
        if e.shape != g.shape or not np.allclose(g, e, rtol=1e-3, atol=1e-4 * scale):
            err = float(np.max(np.abs(g - e))) if e.shape == g.shape else float("nan")
            raise FrameworkError(
                f"the ONNX export differs from the Keras model (max error {err:.3g} at output scale "
                f"{scale:.3g}); tf2onnx derived "
                f"initializers SPA cannot trace: {', '.join(unmatched[:5]) or 'none found'}"
            )
