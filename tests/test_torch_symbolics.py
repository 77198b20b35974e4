"""``nn.RMSNorm`` exports (the TorchScript exporter has no ``aten::rms_norm``) and prunes."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import spa_core
from spa_core.testing import assert_oracle


class RMSBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b, self.c = nn.Linear(8, 16), nn.RMSNorm(16), nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(self.norm(self.a(x)))))


@pytest.mark.parametrize("opset", [17, 18])
def test_rms_norm_exports_and_its_axis_is_a_barrier(opset):
    torch.manual_seed(0)
    model, x = RMSBlock().eval(), torch.randn(2, 8)
    result = spa_core.prune(model, x, ratio=0.5, export_options={"opset": opset})
    assert result.model.b.out_features == 16  # the hidden width behind the norm is pruned
    assert result.model.norm.weight.shape == (16,)  # the normalised axis is not
    assert_oracle(result, rtol=1e-4)


class _Attention(nn.Module):
    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(x, x, x, is_causal=is_causal)


class _CausalFlagModel(nn.Module):
    """A bool ``is_causal`` passed down to a sub-module: the tracer turns it into a tensor (timm EVA)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = _Attention()
        self.hidden = nn.Linear(8, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        # the attention's width is the input's (pruning it would change SDPA's implicit scale)
        return self.out(torch.relu(self.hidden(self.attn(x, is_causal=is_causal))))


def test_is_causal_flag_of_a_submodule_call_exports_and_prunes():
    torch.manual_seed(0)
    model = _CausalFlagModel().eval()
    result = spa_core.prune(model, torch.randn(1, 2, 5, 8), ratio=0.5, criterion="l1")
    assert assert_oracle(result) < 1e-4
    assert result.model.hidden.out_features < 16
    assert torch.nn.functional.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"  # restored
