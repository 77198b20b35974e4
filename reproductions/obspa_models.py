"""Small Fashion-MNIST networks for the OBSPA reproduction: a ResNet, a VGG and a MobileNetV2.

Each is built in code (no torchvision), trained for a few epochs on the 60 000 training
images on CPU, and cached (``state_dict`` as ``.pt``) so that reruns skip training.
Sizes are chosen so that one model trains in a few minutes on 2 cores.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type = nn.ReLU) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, 1, act=None))
        self.short = None
        if stride != 1 or cin != cout:
            self.short = conv_bn(cin, cout, 1, stride, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + (x if self.short is None else self.short(x)))


class ResNet(nn.Module):
    """ResNet-14 for 28x28 inputs: 3 stages of 2 basic blocks, widths 16/32/64 (x ``width``)."""

    def __init__(self, width: int = 1, classes: int = 10):
        super().__init__()
        w = [16 * width, 32 * width, 64 * width]
        self.stem = conv_bn(1, w[0])
        blocks, cin = [], w[0]
        for i, c in enumerate(w):
            for b in range(2):
                blocks.append(BasicBlock(cin, c, 2 if (b == 0 and i > 0) else 1))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class VGG(nn.Module):
    """VGG-style: 3 stages of two 3x3 convs (32/64/128), max pooling, a hidden FC layer."""

    def __init__(self, classes: int = 10):
        super().__init__()
        cfg = [32, 32, "M", 64, 64, "M", 128, 128, "M"]
        layers, cin = [], 1
        for c in cfg:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(conv_bn(cin, c))
                cin = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(cin * 3 * 3, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [conv_bn(cin, hidden, 1, act=nn.ReLU6)]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """MobileNetV2-style: inverted residuals (expansion 4, depthwise 3x3), widths 16-64, stride-2 stem."""

    def __init__(self, classes: int = 10):
        super().__init__()
        cfg = [(1, 16, 1, 1), (4, 24, 2, 1), (4, 32, 2, 2), (4, 64, 2, 1)]
        layers, cin = [conv_bn(1, 32, stride=2, act=nn.ReLU6)], 32
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 256, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(256, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


MODELS: dict[str, Callable[[], nn.Module]] = {"resnet14": ResNet, "vgg": VGG, "mobilenetv2": MobileNetV2}


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, batch: int = 128, seed: int = 0) -> float:
    """Adam + one-cycle schedule; returns seconds spent."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for i in range(len(x) // batch):
            idx = torch.from_numpy(perm[i * batch : (i + 1) * batch])
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return time.perf_counter() - t0


def trained(name: str, cache: Path, epochs: int, x: np.ndarray, y: np.ndarray) -> tuple[nn.Module, float]:
    """The model trained for ``epochs`` (loaded from ``cache`` when present); seconds trained."""
    model = MODELS[name]()
    path = cache / f"{name}_e{epochs}_n{len(x)}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path))
        return model.eval(), 0.0
    seconds = train(model, x, y, epochs)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval(), seconds


def export(model: nn.Module, batch: int = 1) -> onnx.ModelProto:
    """ONNX with BatchNorm and PyTorch names kept (``do_constant_folding=False``)."""
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(batch, 1, 28, 28),), buf, dynamo=False,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return onnx.load_from_string(buf.getvalue())
