"""Workaround: import torchvision's CUDA wheel with a CPU-only torch.

The torchvision wheel on the package index is built against CUDA torch. With the CPU
torch this project pins, its compiled extension ``torchvision/_C.so`` does not load, and
``import torchvision`` (hence ``import timm``) fails with ``operator torchvision::nms does
not exist``: ``torchvision/_meta_registrations.py`` registers fake kernels for
``torchvision::nms``/``qnms`` whose schemas only the extension would have defined.

:func:`ensure_torchvision` defines torchvision's operator *schemas* with
``torch.library`` before the import, when (and only when) the extension cannot be loaded.
The pure-Python parts then work: every ``torchvision.models`` builder and timm's models.
The compiled operators themselves (``nms``, ``roi_align``, ``deform_conv2d``...) still
raise when called, so detection heads are out of reach; their backbones are not.

This is a documented workaround (see ``/work/shared/ENVIRONMENT.md``); torchvision and
timm are not runtime dependencies of SPA. It acts only when torchvision is installed
and its extension cannot load, so a working torchvision is left alone. SPA calls it
before importing code that imports torchvision on its own (``onnx2torch``,
``transformers``' image utilities); tests and benchmarks call it before
``import torchvision, timm``::

    from spa_torch.torchvision_compat import ensure_torchvision
    ensure_torchvision()
    import torchvision, timm
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

# The schemas of torchvision's C++ operators (torchvision/csrc/ops/*.cpp, 0.2x).
SCHEMAS: tuple[str, ...] = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, float rois_scale, "
    "int rois_zero_point, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, "
    "SymInt width) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, "
    "SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, "
    "SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, "
    "Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    "_cuda_version() -> int",
)

_LIBRARY: torch.library.Library | None = None  # kept alive: dropping it removes the schemas


def _has_op(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _extension_loads() -> bool:
    """Whether torchvision's compiled extension loads into this torch (no workaround needed)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for lib in sorted(Path(folder).glob("_C*.so")) + sorted(Path(folder).glob("_C*.pyd")):
            try:
                torch.ops.load_library(str(lib))
                return True
            except (OSError, RuntimeError):
                continue
    return False


def ensure_torchvision() -> bool:
    """Make ``import torchvision`` work; return True when the schemas had to be defined.

    Idempotent. Does nothing when torchvision is already imported, when its extension
    loads, or when the schemas are already defined.
    """
    global _LIBRARY
    if "torchvision" in sys.modules or _LIBRARY is not None or _has_op("nms"):
        return _LIBRARY is not None
    if _extension_loads():
        return False
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for schema in SCHEMAS:
        _LIBRARY.define(schema)
    return True
