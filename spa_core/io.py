"""Loading and atomically saving ONNX models and text files.

Outputs are always written to a temporary file in the destination folder and renamed
into place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import onnx

from .errors import InvalidModelError
from .graph import FLOAT_TYPES

# Models whose initializers exceed this are saved with external data (protobuf's 2 GiB cap).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def load_model(source: str | Path | onnx.ModelProto | bytes) -> onnx.ModelProto:
    """Load an ONNX model from a path, bytes or a ``ModelProto`` (external data included).

    A ``ModelProto`` is copied, so the caller's object is never modified.
    """
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model
    if isinstance(source, bytes):
        try:
            return onnx.load_from_string(source)
        except Exception as exc:  # protobuf raises DecodeError and friends
            raise InvalidModelError(f"bytes are not an ONNX model ({type(exc).__name__})") from None
    path = Path(source)
    if not path.exists():
        raise InvalidModelError(f"model file not found: {path}")
    if not path.is_file():
        raise InvalidModelError(f"not a file: {path}")
    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as exc:
        raise InvalidModelError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'truncated or corrupt'})"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise InvalidModelError(f"{path} is not an ONNX model (no graph found)")
    return model


_INLINE_BYTES = 1024


def tensor_bytes(tensor: onnx.TensorProto) -> int:
    """Bytes of a tensor's values, from its shape and type (reading ``raw_data`` would copy them)."""
    return math.prod(tensor.dims) * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def _copy_fields(source: Any, target: Any, skip: str) -> None:
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if field.is_repeated:
            getattr(target, field.name).extend(value)
        elif field.message_type is not None:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)


def copy_without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose graph has no initializers: copying the weights of a model of
    gigabytes only to replace them (surgery) or to write them out (a session) doubles its memory."""
    copy = onnx.ModelProto()
    _copy_fields(model, copy, skip="graph")
    _copy_fields(model.graph, copy.graph, skip="initializer")
    return copy


def external_weights(model: onnx.ModelProto, data_file: Path, location: str) -> onnx.ModelProto:
    """Write every initializer's bytes of ``model`` to ``data_file``, one tensor at a time (no
    second copy of the weights in memory), and return the model that points at them as
    external data named ``location`` (a path relative to the model file)."""
    skeleton = copy_without_initializers(model)
    offset = 0
    with open(data_file, "wb") as data:
        for tensor in model.graph.initializer:
            # integer tensors and small ones stay inline: onnxruntime's shape inference reads
            # the values of shape inputs and cannot read them from external data
            if (not tensor.HasField("raw_data") or tensor.data_type not in FLOAT_TYPES
                    or tensor_bytes(tensor) < _INLINE_BYTES):
                skeleton.graph.initializer.append(tensor)
                continue
            raw = tensor.raw_data
            stub = skeleton.graph.initializer.add()
            stub.name, stub.data_type = tensor.name, tensor.data_type
            stub.dims.extend(tensor.dims)
            stub.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
                stub.external_data.add(key=key, value=value)
            data.write(raw)
            offset += len(raw)
    return skeleton


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the initializers held in the model (near protobuf's 2 GiB limit, a model must be
    serialised with external data)."""
    return sum(tensor_bytes(t) for t in model.graph.initializer)


def needs_external_data(model: onnx.ModelProto) -> bool:
    return weight_bytes(model) >= EXTERNAL_DATA_THRESHOLD


def save_model(model: onnx.ModelProto, path: str | Path) -> None:
    """Save atomically; large models get their weights in an external data file beside."""
    dest = Path(path)
    if not needs_external_data(model):
        atomic_write(dest, lambda tmp: tmp.write_bytes(model.SerializeToString()))
        return
    data_name = dest.name + ".data"
    with atomic_path(dest.parent / data_name) as data_tmp:
        skeleton = external_weights(model, data_tmp, data_name)
        atomic_write(dest, lambda tmp: tmp.write_bytes(skeleton.SerializeToString()))
