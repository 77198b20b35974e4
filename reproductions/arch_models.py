"""Seven architecture families sized for 28x28 grey images (Fashion-MNIST), built in code.

ResNet, VGG and MobileNetV2 come from :mod:`obspa_models`; AlexNet, DenseNet,
EfficientNet-B0 and ViT styles are defined here. Each is small enough to train an epoch
on 20 000 images in well under a minute on two cores, and keeps its family's defining
structure: AlexNet's large first kernel and FC stack, DenseNet's concatenations,
EfficientNet's MBConv blocks with squeeze-and-excitation and SiLU, ViT's patch embedding,
multi-head attention (``nn.MultiheadAttention``) and MLP blocks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from obspa_models import VGG, MobileNetV2, ResNet, conv_bn


class AlexNet(nn.Module):
    """AlexNet-style: a 5x5 stem, three 3x3 convs, max pooling, dropout and a 3-layer FC head."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(),
            nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.3), nn.Linear(64 * 3 * 3, 256), nn.ReLU(),
            nn.Dropout(0.3), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (4k) - BN-ReLU-conv3x3 (k), concatenated to the input."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    """DenseNet-BC-style: three dense blocks of 4 layers (growth 12) with transitions (compression 0.5)."""

    def __init__(self, classes: int = 10, growth: int = 12, layers: int = 4):
        super().__init__()
        c = 2 * growth
        mods: list[nn.Module] = [nn.Conv2d(1, c, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(layers):
                mods.append(DenseLayer(c, growth))
                c += growth
            if block < 2:
                mods += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        mods += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*mods)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, reduce (SiLU), expand (sigmoid), rescale."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MBConv(nn.Module):
    """EfficientNet's MBConv: expand 1x1, depthwise kxk, SE (ratio 0.25 of the input), project 1x1."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [] if expand == 1 else [conv_bn(cin, hidden, 1, act=nn.SiLU)]
        layers += [conv_bn(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcite(hidden, max(1, cin // 4)), conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class EfficientNetB0(nn.Module):
    """EfficientNet-B0-style, scaled down: B0's stage pattern (expansion, kernel, stride) at widths 16-96."""

    def __init__(self, classes: int = 10):
        super().__init__()
        # (expand, channels, repeats, stride, kernel), B0's seven stages with narrower widths
        cfg = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 32, 2, 2, 5), (6, 48, 2, 1, 3),
               (6, 64, 1, 1, 5), (6, 80, 1, 2, 5), (6, 96, 1, 1, 3)]
        layers, cin = [conv_bn(1, 24, act=nn.SiLU)], 24
        for t, c, n, s, k in cfg:
            for i in range(n):
                layers.append(MBConv(cin, c, t, k, s if i == 0 else 1))
                cin = c
        layers.append(conv_bn(cin, 256, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(256, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: LayerNorm, multi-head attention, LayerNorm, GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """ViT-style: 4x4 patches (49 tokens), a class token, 4 blocks of width 64 with 4 heads, MLP 128."""

    def __init__(self, classes: int = 10, dim: int = 64, depth: int = 4, heads: int = 4, mlp: int = 128):
        super().__init__()
        self.patch = nn.Conv2d(1, dim, 4, 4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 50, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


MODELS: dict[str, Callable[[], nn.Module]] = {
    "AlexNet": AlexNet,
    "VGG": VGG,
    "ResNet-14": ResNet,
    "DenseNet": DenseNet,
    "MobileNetV2": MobileNetV2,
    "EfficientNet-B0": EfficientNetB0,
    "ViT": ViT,
}
