"""Workarounds, active only while SPA exports a module, for calls the TorchScript exporter breaks.

Always on (:func:`tracing_fixes`):

* ``F.scaled_dot_product_attention(..., is_causal=flag)``: the tracer hands a Python
  ``bool`` keyword argument of a sub-module call on as a 0-d tensor, which the ATen
  binding rejects ("argument 'is_causal' must be bool, not Tensor"; timm's EVA models).
  The flag is a constant of the traced graph, so it is turned back into a ``bool``.
* ``torch._C._jit_onnx_log``: the exporter's debug log is switched on by a bug in its
  ``setup_onnx_logging`` (it tests a function for truth), so a failed export prints the
  whole TorchScript graph to stdout. SPA reports the failure itself; the dump is muted.

On a second attempt, after a plain export failed (:func:`tracing_fixes` with
``decompose=True``), calls with no ONNX symbolic are rewritten into equivalent operations
that have one. Each rewrite is exact up to float rounding and only used for static shapes,
which a traced export has anyway:

* ``Tensor.unfold(dim, size, step)`` ("input size not accessible"; timm's HaloNets):
  the windows are sliced out and stacked.
* ``F.adaptive_avg_pool2d`` to a size that does not divide the input ("output size that are
  not factor of input size"; timm's CSATv2): the pooling is a separable linear map,
  ``P_h @ x @ P_wᵀ`` with constant bin-averaging matrices.
* ``F.interpolate(..., antialias=True)`` (``aten::_upsample_bicubic2d_aa`` has no symbolic;
  timm's NaFlexViT and Hiera resample position embeddings with it): also a separable linear
  map, whose matrices are obtained by running PyTorch's own kernel on identity matrices
  outside the trace, so the weights are PyTorch's.
* ``F.fold`` (``aten::col2im`` needs opset 18; timm's VOLO): a transposed convolution with
  one channel per group and a constant one-hot kernel, which adds every block entry into
  its place as col2im does.

Only the retry uses them, so a model that exports today keeps exactly the graph it had.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F


def _as_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value


@contextmanager
def untraced() -> Iterator[None]:
    """Compute constants without recording them in the graph being traced."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def static_size(x: torch.Tensor, dim: int) -> int:
    """``x.shape[dim]`` as a plain int, without a tracer warning (shapes are static in a traced export)."""
    with untraced():
        return int(x.shape[dim])


def _separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, made: list[torch.Tensor]) -> torch.Tensor:
    """``rows @ x @ colsᵀ`` over the last two axes of a 4-D tensor.

    The two matrices become constants of the graph; they are listed in ``made`` so that
    the export can tell SPA they describe a computation, not weights to prune.
    """
    with untraced():
        left = rows.to(x.dtype).contiguous()
        right = cols.to(x.dtype).t().contiguous()
    made += [left, right]
    return torch.matmul(torch.matmul(left, x), right)


def unfold_by_slicing(original: Callable[..., torch.Tensor], made: list[torch.Tensor]) -> Callable[..., torch.Tensor]:
    def unfold(self: torch.Tensor, dimension: int, size: int, step: int) -> torch.Tensor:
        dim = dimension % self.dim()
        windows = (static_size(self, dim) - size) // step + 1
        if windows < 1:
            return original(self, dimension, size, step)
        pieces = [self.narrow(dim, i * step, size) for i in range(windows)]
        return torch.stack(pieces, dim=dim).movedim(dim + 1, -1)

    return unfold


def _pooling_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """Row i averages PyTorch's adaptive bin [floor(i*n/m), ceil((i+1)*n/m))."""
    matrix = torch.zeros(size_out, size_in)
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_pool_as_matmul(original: Callable[..., torch.Tensor], made: list[torch.Tensor]) -> Callable[..., torch.Tensor]:
    def adaptive_avg_pool2d(input: torch.Tensor, output_size: Any) -> torch.Tensor:
        if input.dim() != 4:
            return original(input, output_size)
        height, width = static_size(input, 2), static_size(input, 3)
        out = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        out_h = height if out[0] is None else int(out[0])
        out_w = width if out[1] is None else int(out[1])
        if height % out_h == 0 and width % out_w == 0:
            return original(input, output_size)
        with untraced():
            rows, cols = _pooling_matrix(height, out_h), _pooling_matrix(width, out_w)
        return _separable(input, rows, cols, made)

    return adaptive_avg_pool2d


def _resize_matrix(original: Callable[..., torch.Tensor], size_in: int, size_out: int, scale: float | None,
                   kwargs: dict[str, Any]) -> torch.Tensor:
    """The ``size_out x size_in`` matrix PyTorch's kernel applies along one axis.

    ``scale``: the caller's scale factor for this axis, which PyTorch uses for the kernel
    weights instead of the size ratio (unless asked to recompute it).
    """
    # the other axis is 4 wide and kept (a resize to the same size is the identity): with
    # width 1, PyTorch's antialiased kernel returns a constant column
    basis = torch.eye(size_in).reshape(size_in, 1, size_in, 1).expand(size_in, 1, size_in, 4)
    target = {"scale_factor": (scale, 1.0)} if scale is not None else {"size": (size_out, 4)}
    return original(basis, **target, **kwargs)[:, 0, :, 0].t().contiguous()


def antialiased_resize_as_matmul(original: Callable[..., torch.Tensor], made: list[torch.Tensor]) -> Callable[..., torch.Tensor]:
    def interpolate(input: torch.Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                    align_corners: Any = None, recompute_scale_factor: Any = None,
                    antialias: bool = False) -> torch.Tensor:
        call = {"size": size, "scale_factor": scale_factor, "mode": mode, "align_corners": align_corners,
                "recompute_scale_factor": recompute_scale_factor, "antialias": antialias}
        if not antialias or input.dim() != 4 or mode not in ("bilinear", "bicubic"):
            return original(input, **call)
        height, width = static_size(input, 2), static_size(input, 3)
        scales: tuple[Any, Any] = (None, None)
        if size is None and scale_factor is not None and not recompute_scale_factor:
            scales = tuple(scale_factor) if isinstance(scale_factor, list | tuple) else (scale_factor, scale_factor)
        with untraced():
            probe = original(torch.zeros(1, 1, height, width), **call)
            kwargs = {"mode": mode, "align_corners": align_corners, "antialias": True}
            rows = _resize_matrix(original, height, probe.shape[2], scales[0], kwargs)
            cols = _resize_matrix(original, width, probe.shape[3], scales[1], kwargs)
        return _separable(input, rows, cols, made)

    return interpolate


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _fold_kernel(channels: int, kernel: tuple[int, int]) -> torch.Tensor:
    """One-hot transposed-convolution kernel: input channel ``c*kh*kw + i*kw + j`` adds into
    output channel ``c`` at kernel offset ``(i, j)``, which is what col2im does."""
    kh, kw = kernel
    weight = torch.zeros(channels * kh * kw, 1, kh, kw)
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                weight[(c * kh + i) * kw + j, 0, i, j] = 1.0
    return weight


def fold_as_transposed_conv(original: Callable[..., torch.Tensor], made: list[torch.Tensor]) -> Callable[..., torch.Tensor]:
    def fold(input: torch.Tensor, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
             stride: Any = 1) -> torch.Tensor:
        if input.dim() != 3:
            return original(input, output_size, kernel_size, dilation, padding, stride)
        (height, width), kernel = _pair(output_size), _pair(kernel_size)
        dil, pad, step = _pair(dilation), _pair(padding), _pair(stride)
        blocks = [(size + 2 * p - d * (k - 1) - 1) // s + 1
                  for size, p, d, k, s in zip((height, width), pad, dil, kernel, step)]
        channels = static_size(input, 1) // (kernel[0] * kernel[1])
        extra = [size - ((n - 1) * s - 2 * p + d * (k - 1) + 1)
                 for size, n, s, p, d, k in zip((height, width), blocks, step, pad, dil, kernel)]
        if any(e < 0 or e >= max(s, d) for e, s, d in zip(extra, step, dil)):
            return original(input, output_size, kernel_size, dilation, padding, stride)
        with untraced():
            weight = _fold_kernel(channels, kernel).to(input.dtype)
        made.append(weight)
        grid = input.reshape(static_size(input, 0), static_size(input, 1), blocks[0], blocks[1])
        return F.conv_transpose2d(grid, weight, stride=step, padding=pad, output_padding=tuple(extra),
                                  groups=channels, dilation=dil)

    return fold


def _mute(*args: Any) -> None:
    """Drop an exporter debug-log message."""


# (owner, attribute, rewrite) for the second attempt
Rewrite = Callable[[Callable[..., Any], list[torch.Tensor]], Callable[..., Any]]
DECOMPOSITIONS: tuple[tuple[Any, str, Rewrite], ...] = (
    (torch.Tensor, "unfold", unfold_by_slicing),
    (F, "adaptive_avg_pool2d", adaptive_pool_as_matmul),
    (F, "interpolate", antialiased_resize_as_matmul),
    (F, "fold", fold_as_transposed_conv),
)


@contextmanager
def tracing_fixes(decompose: bool = False) -> Iterator[list[torch.Tensor]]:
    """Patch the calls above for the duration of an export (the decompositions on request).

    Yields the list of constant matrices the decompositions put into the graph.
    """
    original_attention = F.scaled_dot_product_attention

    def attention(*args: Any, **kwargs: Any) -> Any:
        if "is_causal" in kwargs:
            kwargs["is_causal"] = _as_bool(kwargs["is_causal"])
        elif len(args) > 5:
            args = (*args[:5], _as_bool(args[5]), *args[6:])
        return original_attention(*args, **kwargs)

    made: list[torch.Tensor] = []
    patches = [(F, "scaled_dot_product_attention", original_attention, attention),
               (torch._C, "_jit_onnx_log", torch._C._jit_onnx_log, _mute)]
    if decompose:
        patches += [(owner, name, getattr(owner, name), rewrite(getattr(owner, name), made))
                    for owner, name, rewrite in DECOMPOSITIONS]
    for owner, name, _, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield made
    finally:
        for owner, name, original, _ in reversed(patches):
            setattr(owner, name, original)
