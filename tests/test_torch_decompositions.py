"""Calls the TorchScript exporter cannot export are rewritten, and pruned models stay exact.

A plain export of these modules fails (``Tensor.unfold`` whose size the exporter cannot
read, an adaptive pool that does not divide its input, an antialiased resize); SPA retries
with the call rewritten into operations that export, exact up to float rounding. The
rewrites' constant matrices are marked so that pruning never touches them (they stand for
a computation, not for weights), and the pruned module still equals the pruned ONNX.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from spa_torch.export import export_module
from spa_torch.trace_fixes import (
    adaptive_pool_as_matmul,
    antialiased_resize_as_matmul,
    fold_as_transposed_conv,
    tracing_fixes,
    unfold_by_slicing,
)

import spa_core
from spa_core.errors import FrameworkError
from spa_core.graph import frozen_names
from spa_core.runtime import run_model
from spa_core.testing import assert_oracle


class Windows(nn.Module):
    """HaloNet-style overlapping windows with ``Tensor.unfold`` after a pad."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(self.conv(x), [1, 1, 1, 1])
        windows = x.unfold(2, 4, 2).unfold(3, 4, 2)  # (B, C, nh, nw, 4, 4)
        return self.head(windows.mean((-1, -2)))


class OddPool(nn.Module):
    """CSATv2-style adaptive pool to a size that does not divide the input (10 -> 7)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.pool(self.conv(x))))


class ResampledEmbedding(nn.Module):
    """NaFlexViT/Hiera-style position embedding resampled with an antialiased bicubic resize."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pos = nn.Parameter(torch.randn(1, 8, 12, 12))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = F.interpolate(self.pos, size=x.shape[-2:], mode="bicubic", antialias=True)
        return self.head(torch.relu(self.conv(x) + pos))


class Outlook(nn.Module):
    """VOLO-style outlook: overlapping blocks taken out with ``F.unfold`` and added back with ``F.fold``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.mix(torch.relu(self.conv(x)))  # the fold's channels stay; the hidden ones are pruned
        blocks = F.unfold(v, kernel_size=3, padding=1, stride=2)
        return self.head(F.fold(torch.relu(blocks), v.shape[-2:], kernel_size=3, padding=1, stride=2))


MODELS = [Windows, OddPool, ResampledEmbedding, Outlook]


def test_each_rewrite_equals_the_call_it_replaces():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 10)
    made: list[torch.Tensor] = []
    unfold = unfold_by_slicing(torch.Tensor.unfold, made)
    assert torch.equal(unfold(x, 2, 4, 3), x.unfold(2, 4, 3))
    assert torch.equal(unfold(x, -1, 3, 1), x.unfold(-1, 3, 1))
    pool = adaptive_pool_as_matmul(F.adaptive_avg_pool2d, made)
    for size in [(7, 4), 3, (None, 6)]:
        torch.testing.assert_close(pool(x, size), F.adaptive_avg_pool2d(x, size), rtol=1e-5, atol=1e-6)
    resize = antialiased_resize_as_matmul(F.interpolate, made)
    for kwargs in [dict(size=(5, 4), mode="bicubic"), dict(scale_factor=0.5, mode="bilinear"),
                   dict(size=(20, 16), mode="bicubic", align_corners=True)]:
        torch.testing.assert_close(resize(x, antialias=True, **kwargs), F.interpolate(x, antialias=True, **kwargs),
                                   rtol=1e-5, atol=1e-5)
    fold = fold_as_transposed_conv(F.fold, made)
    for channels, k, size, stride, pad, dil in [(3, 3, (14, 13), 2, 1, 1), (2, 2, (8, 8), 2, 0, 1), (2, 3, (12, 12), 2, 2, 2)]:
        blocks = [(n + 2 * pad - dil * (k - 1) - 1) // stride + 1 for n in size]
        cols = torch.randn(2, channels * k * k, blocks[0] * blocks[1])
        torch.testing.assert_close(fold(cols, size, k, dil, pad, stride), F.fold(cols, size, k, dil, pad, stride),
                                   rtol=1e-5, atol=1e-5)
    assert made, "the pool and resize rewrites record the constant matrices they create"


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_plain_export_fails_and_the_retry_exports_exactly(cls):
    torch.manual_seed(0)
    model, x = cls().eval(), torch.randn(1, 3, 10, 10)
    with pytest.raises(Exception), tracing_fixes(decompose=False):  # noqa: B017 - the exporter's own error
        torch.onnx.export(model, (x,), io.BytesIO(), dynamo=False, opset_version=17)
    exported = export_module(model, (x,), {})
    got = run_model(exported.onnx, {"input": x.numpy()})
    expected = model(x).detach().numpy()
    np.testing.assert_allclose(next(iter(got.values())), expected, rtol=1e-5, atol=1e-5)
    onnx.checker.check_model(exported.onnx)
    if cls is not Windows:
        assert frozen_names(exported.onnx), "the rewrite's matrices are marked as not prunable"


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_rewritten_models_prune_with_the_oracle_and_the_native_check(cls):
    torch.manual_seed(0)
    model, x = cls().eval(), torch.randn(1, 3, 10, 10)
    result = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    assert result.model.conv.out_channels < 8
    assert assert_oracle(result, rtol=1e-4) < 1e-4
    np.testing.assert_allclose(result.model(x).detach().numpy(),
                               next(iter(run_model(result.onnx, {"input": x.numpy()}).values())), rtol=1e-4, atol=1e-5)
    assert frozen_names(result.onnx) == frozen_names(result.exported.onnx), "the mark survives pruning"
    exact = spa_core.prune(model, x, ratio=0.0, criterion="l1")
    np.testing.assert_array_equal(exact.model(x).detach().numpy(), model(x).detach().numpy())


def test_an_export_that_fails_with_the_rewrites_too_reports_the_first_error():
    class Unexportable(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.eigvals(x).real

    with pytest.raises(FrameworkError, match="torch.onnx.export failed for Unexportable"):
        export_module(Unexportable(), (torch.randn(1, 4, 4),), {})
