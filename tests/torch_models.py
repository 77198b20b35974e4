"""PyTorch models for adapter tests: recurrent, attention, detection heads, multi-IO, functional."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Recurrent(nn.Module):
    def __init__(self, cell=nn.LSTM, bidirectional: bool = False):
        super().__init__()
        self.embed = nn.Linear(6, 10)
        self.rnn = cell(10, 16, num_layers=2, bidirectional=bidirectional)
        self.fc = nn.Linear(32 if bidirectional else 16, 3)

    def forward(self, x):
        y, _ = self.rnn(torch.tanh(self.embed(x)))
        return self.fc(y)


class MHABlock(nn.Module):
    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.inp = nn.Linear(12, 16)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=batch_first)
        self.norm = nn.LayerNorm(16)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        h = self.inp(x)
        h = self.norm(h + self.attn(h, h, h, need_weights=False)[0])
        return self.out(h + self.mlp(h))


class YoloHead(nn.Module):
    """Multi-scale features, per-scale heads whose outputs are split into box / class parts and concatenated."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.SiLU())
        self.c2 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.SiLU())
        self.c3 = nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.SiLU())
        self.lateral = nn.Conv2d(32, 16, 1)
        self.fuse = nn.Sequential(nn.Conv2d(16 + 32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.SiLU())
        self.heads = nn.ModuleList([nn.Conv2d(32, 4 + 1 + classes, 1), nn.Conv2d(32, 4 + 1 + classes, 1)])
        self.classes = classes

    def forward(self, x):
        p3 = self.c2(self.c1(x))
        p4 = self.c3(p3)
        up = F.interpolate(self.lateral(p4), scale_factor=2.0, mode="nearest")
        p3 = self.fuse(torch.cat([up, p3], 1))
        outs = []
        for head, feat in zip(self.heads, (p3, p4)):
            y = head(feat).flatten(2)
            box, obj, cls = y.split([4, 1, self.classes], dim=1)
            outs.append(torch.cat([box.sigmoid(), obj.sigmoid(), cls.softmax(1)], 1))
        return torch.cat(outs, 2)


class TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(7, 16), nn.ReLU())
        self.mix = nn.Conv2d(16, 24, 1)
        self.head1 = nn.Conv2d(24, 2, 1)
        self.head2 = nn.Linear(24, 3)

    def forward(self, img, vec):
        h = self.a(img) * self.b(vec)[:, :, None, None]
        h = F.relu(self.mix(h))
        return self.head1(h), self.head2(h.mean((2, 3)))


class Functional(nn.Module):
    """Parameters used through torch.nn.functional, no layer modules."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(12, 3, 3, 3) * 0.3)
        self.b1 = nn.Parameter(torch.randn(12) * 0.1)
        self.w2 = nn.Parameter(torch.randn(6, 12, 3, 3) * 0.3)

    def forward(self, x):
        return F.conv2d(F.relu(F.conv2d(x, self.w1, self.b1, padding=1)), self.w2, padding=1)


class Deconv(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 12, 4, 2, 1)
        self.dw_up = nn.ConvTranspose2d(12, 12, 2, 2, groups=12)
        self.out = nn.Conv2d(12, 2, 1)

    def forward(self, x):
        return self.out(F.relu(self.dw_up(F.relu(self.up(self.down(x))))))


class GroupStdNorm(nn.Module):
    """A normalisation outside ``torch.nn`` over groups of channels, in the manner of timm's
    EvoNorm2dS0: ``x * sigmoid(v * x) / std(x over its group)``, with the group count held in
    ``self.groups`` and used in ``forward``."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(channels))
        self.bias = nn.Parameter(0.1 * torch.randn(channels))
        self.v = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        b, c, h, w = x.shape
        assert c % self.groups == 0
        grouped = x.reshape(b, self.groups, c // self.groups, h, w)
        std = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True).add(1e-5).sqrt()
        std = std.expand(grouped.shape).reshape(b, c, h, w)
        x = x * torch.sigmoid(x * self.v.view(1, -1, 1, 1)) / std
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class GroupStdNet(nn.Module):
    """Convolutions with GroupStdNorms (group sizes 4 and 2) and a residual add between them."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.norm1 = GroupStdNorm(16, groups=4)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.norm2 = GroupStdNorm(16, groups=8)
        self.conv3 = nn.Conv2d(16, 24, 3, padding=1)
        self.norm3 = GroupStdNorm(24, groups=6)
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        x = self.norm1(self.conv1(x))
        x = x + self.norm2(self.conv2(x))
        x = self.norm3(self.conv3(x))
        return self.head(x.mean(dim=(2, 3)))
