"""Loading and atomically saving ONNX models and text files.

Outputs are always written to a temporary file in the destination folder and renamed
into place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx

from .errors import InvalidModelError

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


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the initializers held in the model (near protobuf's 2 GiB limit, a model must be
    serialised with external data)."""
    return sum(len(t.raw_data) for t in model.graph.initializer)


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
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        onnx.save_model(
            copy,
            str(dest.parent / (".tmp_" + dest.name)),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_tmp.name,
        )
        # re-point the external data location to the final name, then rename both
        proto_tmp = dest.parent / (".tmp_" + dest.name)
        m = onnx.load(str(proto_tmp), load_external_data=False)
        for t in m.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = data_name
        proto_tmp.unlink()
        atomic_write(dest, lambda tmp: tmp.write_bytes(m.SerializeToString()))
