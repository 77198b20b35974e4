"""Models past protobuf's 2 GiB limit: exported to a file, run in onnxruntime from external data.

A real one (torchvision's ViT-H/14, RegNet-Y-128GF) is in the coverage benchmark; here the
threshold is lowered so that a small network takes the same path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from spa_torch import export as torch_export

import spa_core
import spa_core.io
from spa_core.runtime import run_model
from spa_core.testing import assert_oracle


@pytest.fixture
def tiny_threshold(monkeypatch):
    monkeypatch.setattr(spa_core.io, "EXTERNAL_DATA_THRESHOLD", 1_000)
    monkeypatch.setattr(torch_export, "EXTERNAL_DATA_THRESHOLD", 1_000)


def test_a_model_over_the_limit_prunes_through_files(tiny_threshold, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    assert spa_core.io.needs_external_data(torch_export.export_module(model, (x,), {}).onnx)
    result = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    assert result.model[0].out_channels == 8
    assert_oracle(result, rtol=1e-4)
    got = run_model(result.onnx, {"input": x.numpy()})
    np.testing.assert_allclose(next(iter(got.values())), result.model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    path = tmp_path / "pruned.onnx"
    spa_core.io.save_model(result.onnx, path)
    assert (tmp_path / "pruned.onnx.data").exists()
    reloaded = spa_core.io.load_model(path)
    np.testing.assert_array_equal(next(iter(run_model(reloaded, {"input": x.numpy()}).values())),
                                  next(iter(got.values())))
