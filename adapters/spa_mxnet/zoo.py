"""Small Gluon example networks with random weights (MXNet's environment only).

Used by the tests and the documentation: a ResNet (Conv, BatchNorm, residual add with a
1x1 projection shortcut, global pooling, Dense) and a MobileNet-style network
(depthwise convolutions via ``groups``, pointwise convolutions, a BatchNorm with
``scale=False``). BatchNorm statistics
and affine parameters are randomised so that pruning errors cannot hide behind the
identity initialisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mxnet as mx
import numpy as np
from mxnet.gluon import nn


class BasicBlock(nn.HybridBlock):
    """conv-bn-relu-conv-bn + shortcut (identity or 1x1 conv-bn), then relu."""

    def __init__(self, channels: int, stride: int, in_channels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(
                nn.Conv2D(channels, 3, stride, 1, use_bias=False, in_channels=in_channels),
                nn.BatchNorm(in_channels=channels),
                nn.Activation("relu"),
                nn.Conv2D(channels, 3, 1, 1, use_bias=False, in_channels=channels),
                nn.BatchNorm(in_channels=channels),
            )
            self.down = None
            if stride != 1 or channels != in_channels:
                self.down = nn.HybridSequential(prefix="")
                self.down.add(
                    nn.Conv2D(channels, 1, stride, use_bias=False, in_channels=in_channels),
                    nn.BatchNorm(in_channels=channels),
                )

    def hybrid_forward(self, F: Any, x: Any) -> Any:  # noqa: N803 (gluon's signature)
        residual = x if self.down is None else self.down(x)
        return F.Activation(self.body(x) + residual, act_type="relu")


def resnet(classes: int = 10, widths: tuple[int, ...] = (8, 16)) -> nn.HybridBlock:
    """Stem, one identity block per stage plus a projection block between stages."""
    net = nn.HybridSequential(prefix="resnet_")
    with net.name_scope():
        net.add(nn.Conv2D(widths[0], 3, 1, 1, use_bias=False, in_channels=3))
        net.add(nn.BatchNorm(in_channels=widths[0]), nn.Activation("relu"))
        in_ch = widths[0]
        for i, w in enumerate(widths):
            net.add(BasicBlock(w, 1 if i == 0 else 2, in_ch))
            net.add(BasicBlock(w, 1, w))
            in_ch = w
        net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(classes, in_units=in_ch))
    return net


def mobilenet(classes: int = 10, widths: tuple[int, ...] = (8, 16, 24)) -> nn.HybridBlock:
    """conv-bn-relu stem (BatchNorm without scale), then (depthwise 3x3 -> bn -> relu ->
    pointwise 1x1 with bias -> bn -> relu), global pooling, Dense."""
    net = nn.HybridSequential(prefix="mobilenet_")
    with net.name_scope():
        net.add(nn.Conv2D(widths[0], 3, 1, 1, use_bias=False, in_channels=3))
        # scale=False is MXNet's fix_gamma=True: gamma is ignored (see mx_export's fixups)
        net.add(nn.BatchNorm(scale=False, in_channels=widths[0]), nn.Activation("relu"))
        in_ch = widths[0]
        for i, w in enumerate(widths[1:]):
            net.add(nn.Conv2D(in_ch, 3, 1 + i % 2, 1, groups=in_ch, use_bias=False, in_channels=in_ch))
            net.add(nn.BatchNorm(in_channels=in_ch), nn.Activation("relu"))
            net.add(nn.Conv2D(w, 1, use_bias=True, in_channels=in_ch))
            net.add(nn.BatchNorm(in_channels=w), nn.Activation("relu"))
            in_ch = w
        net.add(nn.GlobalAvgPool2D(), nn.Dense(classes, in_units=in_ch))
    return net


ZOO: dict[str, Callable[[], nn.HybridBlock]] = {"resnet": resnet, "mobilenet": mobilenet}


def randomise(net: nn.Block, seed: int = 0) -> None:
    """Random weights everywhere, including BatchNorm gamma/beta/mean/var (var > 0)."""
    rng = np.random.default_rng(seed)
    for name, param in sorted(net.collect_params().items()):
        shape = param.shape
        if name.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("beta", "bias", "running_mean")):
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:])) or 1
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        param.set_data(mx.nd.array(value.astype(np.float32)))


def build(name: str, prefix: str, input_shape: tuple[int, ...], seed: int = 0) -> dict[str, str]:
    """Build zoo network ``name``, randomise it, export ``PREFIX-symbol.json``/``-0000.params``."""
    if name not in ZOO:
        raise KeyError(f"no example network {name!r} (have {sorted(ZOO)})")
    mx.random.seed(seed)
    net = ZOO[name]()
    net.initialize(mx.init.Xavier())
    randomise(net, seed)
    net.hybridize()
    net(mx.nd.zeros(input_shape))
    net.export(prefix, epoch=0)
    return {"symbol": prefix + "-symbol.json", "params": prefix + "-0000.params"}
