"""One small CNN written four times: PyTorch, Keras, Flax NNX (here) and MXNet Gluon (in
:mod:`mxnet_cnn`, which runs in MXNet's own environment).

The architecture is the same in every framework::

    conv3x3(1->16) BN ReLU maxpool2 | conv3x3(16->32) BN ReLU maxpool2 |
    conv3x3(32->64) BN ReLU | global average pool | dense 64->64 ReLU | dense 64->10

Global average pooling (not a flatten) keeps the head independent of NCHW/NHWC layouts.
Each framework's entry here is a :class:`Framework`: how to build the model, which layout
its inputs use, and how to evaluate it; training and fine-tuning use SPA's built-in loops
(:func:`spa_core.workflows.finetune`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

WIDTHS = (16, 32, 64)
HIDDEN = 64
CLASSES = 10
# BatchNorm running-average momentum, Keras/Flax convention (new = m * old + (1 - m) * batch):
# PyTorch's default 0.1 and MXNet's 0.9 are both this; Keras' and Flax's default 0.99 would
# leave the running statistics near their initial values after a brief training.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class Framework:
    """How one framework builds, feeds and evaluates the CNN.

    Attributes:
        name: the framework's display name.
        build: ``build(seed) -> model``.
        nhwc: whether inputs are channels-last.
        predict: ``predict(model, x) -> logits`` (numpy in, numpy out).
    """

    name: str
    build: Callable[[int], Any]
    nhwc: bool
    predict: Callable[[Any, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- torch
def build_torch(seed: int) -> Any:
    """The CNN as an ``nn.Sequential``."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    cin = 1
    for i, w in enumerate(WIDTHS):
        layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        if i < len(WIDTHS) - 1:
            layers.append(nn.MaxPool2d(2))
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES)]
    return nn.Sequential(*layers).eval()


def predict_torch(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# ----------------------------------------------------------------------------- keras
def build_keras(seed: int) -> Any:
    """The CNN as a functional ``keras.Model`` (NHWC)."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input((28, 28, 1))
    x = inp
    for i, w in enumerate(WIDTHS):
        x = L.Conv2D(w, 3, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization(momentum=BN_MOMENTUM)(x))
        if i < len(WIDTHS) - 1:
            x = L.MaxPooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(HIDDEN, activation="relu")(x)
    return keras.Model(inp, L.Dense(CLASSES)(x), name="small_cnn")


def predict_keras(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=1000, verbose=0))


# ------------------------------------------------------------------------------ flax
def build_flax(seed: int) -> Any:
    """The CNN as a Flax NNX module (NHWC)."""
    from flax import nnx

    class SmallCNN(nnx.Module):
        """conv-BN-ReLU x3 with two max pools, global average pool, two dense layers."""

        def __init__(self, *, rngs: nnx.Rngs) -> None:
            chans = (1, *WIDTHS)
            self.convs = nnx.List([nnx.Conv(a, b, (3, 3), use_bias=False, rngs=rngs) for a, b in zip(chans, WIDTHS)])
            self.bns = nnx.List([nnx.BatchNorm(b, momentum=BN_MOMENTUM, rngs=rngs) for b in WIDTHS])
            self.fc1 = nnx.Linear(WIDTHS[-1], HIDDEN, rngs=rngs)
            self.fc2 = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

        def __call__(self, x: Any) -> Any:
            for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
                x = nnx.relu(bn(conv(x)))
                if i < len(WIDTHS) - 1:
                    x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
            return self.fc2(nnx.relu(self.fc1(x.mean(axis=(1, 2)))))

    model = SmallCNN(rngs=nnx.Rngs(seed))
    model.eval()
    return model


def predict_flax(model: Any, x: np.ndarray) -> np.ndarray:
    import jax.numpy as jnp

    model.eval()
    return np.concatenate([np.asarray(model(jnp.asarray(x[i : i + 1000]))) for i in range(0, len(x), 1000)])


FRAMEWORKS: dict[str, Framework] = {
    "torch": Framework("PyTorch", build_torch, False, predict_torch),
    "keras": Framework("Keras", build_keras, True, predict_keras),
    "flax": Framework("Flax NNX", build_flax, True, predict_flax),
}


def accuracy(fw: Framework, model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on NCHW images ``x`` (transposed for NHWC frameworks)."""
    xs = x.transpose(0, 2, 3, 1) if fw.nhwc else x
    logits = np.concatenate([fw.predict(model, xs[i : i + 2000]) for i in range(0, len(xs), 2000)])
    return float((logits.argmax(1) == y).mean())


def batch_list(x: np.ndarray, y: np.ndarray, nhwc: bool, batch: int = 128, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled ``(inputs, targets)`` numpy batches in the framework's layout."""
    order = np.random.default_rng(seed).permutation(len(x))
    xs = x.transpose(0, 2, 3, 1) if nhwc else x
    return [(np.ascontiguousarray(xs[order[i : i + batch]]), y[order[i : i + batch]]) for i in range(0, len(x), batch)]
