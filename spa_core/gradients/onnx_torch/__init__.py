"""A small ONNX-to-torch executor, for differentiating ONNX models (see :mod:`.executor`)."""

from .executor import OnnxTorchGraph
from .registry import OPS, op

__all__ = ["OPS", "OnnxTorchGraph", "op"]
