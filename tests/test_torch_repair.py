"""A pruned module whose forward() hard-codes a width is pruned again without that layer.

``spa_core.prune`` applies the plan to the ``nn.Module``; when the result cannot run
(here a ``split`` with fixed sizes), the adapter names the layer at fault from the
traceback and the pruning is redone with its parameters ignored. The oracle holds on
what is pruned, and what was left out is reported.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import spa_core
from spa_core.errors import FrameworkError
from spa_core.testing import assert_oracle


class FixedSplit(nn.Module):
    """Splits its input into two fixed halves of 8 channels: pruning that width breaks it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.split([8, 8], dim=1)
        return self.conv(a) * b


class PartialConv(nn.Module):
    """FasterNet's partial convolution: only the first 4 of 16 channels are convolved."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.split([4, 12], dim=1)
        return torch.cat((self.conv(a), b), 1)


class Net(nn.Module):
    def __init__(self, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(FixedSplit(), nn.Conv2d(8, 16, 3, padding=1)) for _ in range(blocks))
        self.tail = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(block(x))
        return self.tail(x)


def test_hardcoded_split_is_left_unpruned_and_the_rest_is_pruned():
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 3, 8, 8)
    res = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    assert res.extras["auto_ignored"], "the split should have been found"
    assert all("FixedSplit" in w for w in res.extras["auto_ignored"])
    assert res.report.macs_reduction > 0.1  # the tail's hidden width is still pruned
    assert res.model.tail[0].out_channels == 16
    assert_oracle(res, rtol=1e-4)
    with torch.no_grad():
        res.model(x)


def test_a_layer_whose_input_width_is_hardcoded_is_blocked_with_its_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), PartialConv(), nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, 4, 1))
    x = torch.randn(1, 3, 8, 8)
    res = spa_core.prune(model.eval(), x, ratio=0.5)
    assert len(res.extras["auto_ignored"]) == 2  # its weights first, then its nodes (its input)
    assert res.model[0].out_channels == 16 and res.model[2].out_channels == 16
    assert_oracle(res, rtol=1e-4)


class Res2Split(nn.Module):
    """Res2Net's split: ``torch.split(x, self.width)`` with the width stored at construction, so
    once the channels are pruned the first chunk no longer fits the convolution that reads it."""

    def __init__(self, channels: int = 16, width: int = 4) -> None:
        super().__init__()
        self.width = width
        self.conv_in = nn.Conv2d(channels, channels, 1)
        self.convs = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1)])
        self.conv_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, *rest = torch.split(self.conv_in(x), self.width, 1)
        return x + self.conv_out(torch.cat((self.convs[0](first), *rest), 1))


class Tree(nn.Module):
    """DLA's tree: the repeated blocks are named ``tree1``/``tree2`` at every depth, not indexed."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.tree1 = Res2Split() if depth == 1 else Tree(depth - 1)
        self.tree2 = Res2Split() if depth == 1 else Tree(depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tree2(torch.relu(self.tree1(x)))


class Dla(nn.Module):
    """14 Res2 blocks whose ``convs.0`` fail in three roles (trees of depth 1, 2 and 3): more
    than the repairs allowed if every block counted as its own role."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.level2, self.level3, self.level4 = Tree(1), Tree(2), Tree(3)
        self.head = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.level4(self.level3(self.level2(self.stem(x)))))


def test_blocks_named_by_depth_are_one_role_per_depth():
    torch.manual_seed(0)
    model, x = Dla().eval(), torch.randn(1, 3, 8, 8)
    assert sum(isinstance(m, Res2Split) for m in model.modules()) == 14 > spa_core.api.MAX_REPAIRS
    res = spa_core.prune(model, x, ratio=0.5)
    assert 1 <= len(res.extras["auto_ignored"]) <= 3, res.extras["auto_ignored"]
    assert res.model.head[0].out_channels == 16  # what does not depend on the split is pruned
    assert_oracle(res, rtol=1e-4)
    with torch.no_grad():
        res.model(x)


def test_a_model_without_hardcoded_widths_reports_nothing():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    res = spa_core.prune(model, torch.randn(1, 3, 8, 8), ratio=0.5)
    assert "auto_ignored" not in res.extras


def test_inplace_pruning_does_not_retry():
    model, x = Net().eval(), torch.randn(1, 3, 8, 8)
    with pytest.raises(FrameworkError, match="hard-codes a width"):
        spa_core.prune(model, x, ratio=0.5, inplace=True)


class ImplicitlyScaledAttention(nn.Module):
    """One head: ``scaled_dot_product_attention`` divides by sqrt of the (prunable) query width."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.wq, self.wk, self.wv = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(self.wq(x), self.wk(x), self.wv(x))


class AttentionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.attn = ImplicitlyScaledAttention()
        self.mlp = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.attn(x)
        return self.head(x + self.mlp(x))


def test_attention_whose_implicit_scale_would_change_is_left_unpruned():
    """The pruned module would divide by sqrt(new width), the ONNX graph by sqrt(8): the
    module runs but differs, and the layer is named from the recorded query widths."""
    torch.manual_seed(0)
    model, x = AttentionNet().eval(), torch.randn(2, 5, 4)
    result = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    assert any(name.startswith("attn ") for name in result.extras.get("auto_ignored", [])), result.extras
    assert result.model.attn.wq.out_features == 8, "the attention keeps its width"
    assert result.model.mlp[0].out_features < 32, "the rest is still pruned"
    assert_oracle(result, rtol=1e-4)
    with torch.no_grad():
        assert result.model(x).shape == (2, 5, 3)


class GatedSplit(nn.Module):
    """MambaOut-style gated block: one projection split by sizes kept in an attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(8, 24, 1)
        self.split_indices = (12, 8, 4)
        self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.fc2 = nn.Conv2d(12, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, i, c = torch.split(self.fc1(x), self.split_indices, dim=1)
        return x + self.fc2(torch.relu(g) * torch.cat((i, self.conv(c)), dim=1))


def test_split_sizes_held_in_an_attribute_follow_the_pruning():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), GatedSplit(), GatedSplit(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    result = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    assert not result.extras.get("auto_ignored"), result.extras
    block = result.model[1]
    assert sum(block.split_indices) == block.fc1.out_channels < 24
    assert isinstance(block.split_indices, tuple) and block.split_indices != (12, 8, 4)
    assert_oracle(result, rtol=1e-4)
