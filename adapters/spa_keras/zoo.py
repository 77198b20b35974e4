"""Small Keras architectures built in code, for tests and the coverage benchmark.

Each builder returns ``(model, example_input)``. Weights are Keras' random initial ones,
except that BatchNormalization statistics and affine parameters and all biases are
randomised (so that a wrong channel binding shows in the numbers); pass
``init_values=True`` to keep Keras' initial values (unit BN, zero biases).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

IMAGE = (1, 32, 32, 3)


def randomize(model: Any, seed: int = 0) -> Any:
    """Non-trivial BN statistics, BN/LN scales around 1 and small non-zero biases."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            randomize(layer, seed + 1)
            continue
        values = []
        for var in layer.weights:
            value = np.asarray(var.numpy())
            name = var.name
            if value.dtype.kind != "f":
                values.append(value)
            elif name in ("moving_variance", "gamma") or name.endswith("variance"):
                values.append(rng.uniform(0.5, 1.5, value.shape).astype(value.dtype))
            elif name in ("moving_mean", "beta", "bias") or name.endswith("bias"):
                values.append(rng.normal(0.0, 0.2, value.shape).astype(value.dtype))
            else:
                values.append(value)
        if values:
            layer.set_weights(values)
    return model


def calibrate_batchnorm(model: Any, x: np.ndarray) -> int:
    """Set every BatchNormalization's moving statistics to those of its input on ``x``.

    With random weights and unit statistics, deep networks whose residual branches are not
    normalised (EfficientNetV2-M/L) grow activations by orders of magnitude and end in the
    cancellation of huge terms: Keras itself then differs by tens of percent between float32
    and float64, and no check at 1e-4 means anything. Statistics measured on the input, as
    in a trained network, keep activations near unit scale. The layers are calibrated in
    order, each on the input its calibrated predecessors produce. Returns the count.
    """
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    probe = keras.Model(model.inputs, [layer.input for layer in norms])
    for index, layer in enumerate(norms):
        inputs = np.asarray(probe(x, training=False)[index])
        channel_axis = (layer.axis if isinstance(layer.axis, int) else layer.axis[0]) % inputs.ndim
        axes = tuple(a for a in range(inputs.ndim) if a != channel_axis)
        weights = layer.get_weights()  # [gamma, beta,] moving_mean, moving_variance
        weights[-2] = inputs.mean(axis=axes).astype(weights[-2].dtype)
        weights[-1] = (inputs.var(axis=axes) + 1e-3).astype(weights[-1].dtype)
        layer.set_weights(weights)
    return len(norms)


def _finish(model: Any, shape: tuple[int, ...], init_values: bool, seed: int = 0) -> tuple[Any, np.ndarray]:
    if not init_values:
        randomize(model, seed)
    x = np.random.default_rng(seed + 100).standard_normal(shape).astype(np.float32)
    return model, x


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool = True) -> Any:
    from keras import layers as L

    x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


# ---------------------------------------------------------------- ResNet (basic blocks)
def resnet(init_values: bool = False, classes: int = 10, widths: tuple[int, ...] = (16, 32)) -> tuple[Any, np.ndarray]:
    """Stem, one basic block per stage (projection shortcut when the shape changes), GAP, Dense."""
    import keras
    from keras import layers as L

    inp = keras.Input(IMAGE[1:], name="image")
    x = _conv_bn(inp, widths[0], 3, 1, "stem")
    cin = widths[0]
    for s, width in enumerate(widths):
        stride = 1 if s == 0 else 2
        name = f"stage{s}"
        y = _conv_bn(x, width, 3, stride, f"{name}_a")
        y = _conv_bn(y, width, 3, 1, f"{name}_b", relu=False)
        if stride != 1 or cin != width:
            x = _conv_bn(x, width, 1, stride, f"{name}_down", relu=False)
        x = L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([x, y]))
        cin = width
    x = L.GlobalAveragePooling2D(name="pool")(x)
    out = L.Dense(classes, name="logits")(x)
    return _finish(keras.Model(inp, out, name="resnet"), IMAGE, init_values)


# ---------------------------------------------------------------- MobileNetV2-style
def mobilenet_v2(init_values: bool = False, classes: int = 10) -> tuple[Any, np.ndarray]:
    """Inverted residual blocks: 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual."""
    import keras
    from keras import layers as L

    def block(x: Any, cin: int, cout: int, stride: int, expand: int, name: str) -> Any:
        y = _conv_bn(x, cin * expand, 1, 1, f"{name}_expand")
        y = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
        y = L.BatchNormalization(name=f"{name}_dw_bn")(y)
        y = L.ReLU(6.0, name=f"{name}_dw_relu")(y)
        y = _conv_bn(y, cout, 1, 1, f"{name}_project", relu=False)
        if stride == 1 and cin == cout:
            y = L.Add(name=f"{name}_add")([x, y])
        return y

    inp = keras.Input(IMAGE[1:], name="image")
    x = _conv_bn(inp, 16, 3, 2, "stem")
    x = block(x, 16, 16, 1, 4, "b1")
    x = block(x, 16, 24, 2, 4, "b2")
    x = block(x, 24, 24, 1, 4, "b3")
    x = _conv_bn(x, 64, 1, 1, "head")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(0.2, name="drop")(x)
    out = L.Dense(classes, name="logits")(x)
    return _finish(keras.Model(inp, out, name="mobilenet_v2"), IMAGE, init_values)


# ---------------------------------------------------------------- DenseNet-like
def densenet(init_values: bool = False, classes: int = 10, growth: int = 8) -> tuple[Any, np.ndarray]:
    """Pre-activation dense blocks (BN-ReLU-Conv, concatenation) and a transition layer."""
    import keras
    from keras import layers as L

    def bn_relu_conv(x: Any, filters: int, kernel: int, name: str) -> Any:
        x = L.BatchNormalization(name=f"{name}_bn")(x)
        x = L.ReLU(name=f"{name}_relu")(x)
        return L.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)

    def dense_block(x: Any, layers: int, name: str) -> Any:
        for i in range(layers):
            y = bn_relu_conv(x, 2 * growth, 1, f"{name}_{i}_1")
            y = bn_relu_conv(y, growth, 3, f"{name}_{i}_2")
            x = L.Concatenate(name=f"{name}_{i}_concat")([x, y])
        return x

    inp = keras.Input(IMAGE[1:], name="image")
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inp)
    x = dense_block(x, 3, "db1")
    x = bn_relu_conv(x, 24, 1, "trans")
    x = L.AveragePooling2D(2, name="trans_pool")(x)
    x = dense_block(x, 2, "db2")
    x = L.BatchNormalization(name="final_bn")(x)
    x = L.ReLU(name="final_relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    out = L.Dense(classes, name="logits")(x)
    return _finish(keras.Model(inp, out, name="densenet"), IMAGE, init_values)


# ---------------------------------------------------------------- more layer kinds
def vgg_sequential(init_values: bool = False, classes: int = 10) -> tuple[Any, np.ndarray]:
    """A Sequential VGG-style net: Conv+bias, BN, pooling, Flatten, Dense+BN (BN on a Dense)."""
    import keras
    from keras import layers as L

    model = keras.Sequential(
        [
            keras.Input(IMAGE[1:]),
            L.Conv2D(16, 3, padding="same", activation="relu", name="c1"),
            L.BatchNormalization(name="bn1"),
            L.MaxPooling2D(2, name="p1"),
            L.Conv2D(32, 3, padding="same", activation="relu", name="c2"),
            L.MaxPooling2D(2, name="p2"),
            L.Conv2D(32, 3, padding="same", name="c3"),
            L.GlobalMaxPooling2D(name="gmp"),
            L.Dense(64, name="fc1"),
            L.BatchNormalization(name="fc1_bn"),
            L.ReLU(name="fc1_relu"),
            L.Dense(classes, name="logits"),
        ],
        name="vgg_sequential",
    )
    return _finish(model, IMAGE, init_values)


def flatten_head(init_values: bool = False, classes: int = 10) -> tuple[Any, np.ndarray]:
    """Conv-BN-ReLU, then Flatten (channels innermost in NHWC) into Dense, as VGG's head."""
    import keras
    from keras import layers as L

    inp = keras.Input((8, 8, 3), name="image")
    x = _conv_bn(inp, 16, 3, 1, "c1")
    x = L.MaxPooling2D(2, name="pool")(x)
    x = _conv_bn(x, 16, 3, 1, "c2")
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(32, activation="relu", name="fc1")(x)
    out = L.Dense(classes, name="logits")(x)
    return _finish(keras.Model(inp, out, name="flatten_head"), (1, 8, 8, 3), init_values)


def separable_transpose(init_values: bool = False) -> tuple[Any, np.ndarray]:
    """SeparableConv2D, depthwise with multiplier 2, Conv2DTranspose, LayerNormalization, Reshape."""
    import keras
    from keras import layers as L

    inp = keras.Input(IMAGE[1:], name="image")
    x = _conv_bn(inp, 16, 3, 2, "stem")
    x = L.SeparableConv2D(24, 3, padding="same", name="sep")(x)
    x = L.BatchNormalization(name="sep_bn")(x)
    x = L.ReLU(name="sep_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw2")(x)
    x = L.ReLU(name="dw2_relu")(x)
    x = L.Conv2DTranspose(16, 3, strides=2, padding="same", name="up")(x)
    x = L.ReLU(name="up_relu")(x)
    x = L.Conv2D(8, 1, name="head")(x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.Reshape((32 * 32, 8), name="tokens")(x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(4, name="logits")(x)
    return _finish(keras.Model(inp, out, name="separable_transpose"), IMAGE, init_values)


def attention(
    init_values: bool = False, tokens: int = 12, dim: int = 32, vocab: int = 50, norm: bool = True
) -> tuple[Any, np.ndarray]:
    """Embedding, a pre-norm transformer block (MultiHeadAttention + MLP), mean pooling.

    ``norm=False`` leaves out the LayerNormalizations.
    """
    import keras
    from keras import layers as L

    def layer_norm(x: Any, name: str) -> Any:
        return L.LayerNormalization(name=name)(x) if norm else x

    inp = keras.Input((tokens,), dtype="int32", name="ids")
    x = L.Embedding(vocab, dim, name="embed")(inp)
    y = layer_norm(x, "ln1")
    y = L.MultiHeadAttention(4, 8, name="mha")(y, y)
    x = L.Add(name="res1")([x, y])
    y = layer_norm(x, "ln2")
    y = L.Dense(64, activation="gelu", name="mlp1")(y)
    y = L.Dense(dim, name="mlp2")(y)
    x = L.Add(name="res2")([x, y])
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(3, name="logits")(x)
    model = keras.Model(inp, out, name="attention")
    if not init_values:
        randomize(model)
    ids = np.random.default_rng(3).integers(0, vocab, size=(1, tokens)).astype(np.int32)
    return model, ids


ZOO: dict[str, Callable[..., tuple[Any, np.ndarray]]] = {
    "resnet": resnet,
    "mobilenet_v2": mobilenet_v2,
    "densenet": densenet,
    "vgg_sequential": vgg_sequential,
    "separable_transpose": separable_transpose,
    "flatten_head": flatten_head,
    "attention": attention,
}
