"""Small Flax architectures built in code, for tests and the coverage benchmark.

Each builder returns ``(model, example_input)`` with random, non-trivial BatchNorm
statistics and affine parameters (so that a wrong channel binding shows in the numbers),
unless ``init_values=True`` keeps Flax's initial values (all-ones scales, zero biases).
NNX builders return an ``nnx.Module``; linen builders a :class:`spa_jax.LinenModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx

from .linen_model import LinenModel
from .views import NnxView, path_string

IMAGE = (2, 16, 16, 3)


def randomize(leaves: dict[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    """Random non-trivial values: positive variances, scales around 1, small biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, value in leaves.items():
        arr = np.asarray(value)
        if arr.dtype != np.float32:
            out[path] = arr
        elif path.endswith("var"):
            out[path] = rng.uniform(0.5, 1.5, arr.shape).astype(np.float32)
        elif path.endswith("scale"):
            out[path] = rng.uniform(0.5, 1.5, arr.shape).astype(np.float32)
        elif path.endswith(("bias", "mean")):
            out[path] = rng.normal(0, 0.1, arr.shape).astype(np.float32)
        else:
            out[path] = arr
    return out


def _finish_nnx(model: nnx.Module, shape: tuple[int, ...], init_values: bool, dtype: Any = jnp.float32):
    if not init_values:
        values = randomize({p: v.get_value() for p, v in NnxView.variables(model).items()})
        for path, var in NnxView.variables(model).items():
            if path in values and values[path].dtype == np.float32:
                var.set_value(jnp.asarray(values[path]))
    model.eval()
    x = jax.random.normal(jax.random.key(1), shape) if dtype == jnp.float32 else jax.random.randint(
        jax.random.key(1), shape, 0, 32
    )
    return model, x


def _finish_linen(module: nn.Module, shape: tuple[int, ...], init_values: bool, kwargs: dict[str, Any]):
    x = jax.random.normal(jax.random.key(1), shape)
    variables = module.init(jax.random.key(0), x, **kwargs)
    if not init_values:
        flat, treedef = jax.tree_util.tree_flatten_with_path(variables)
        values = randomize({path_string(p): v for p, v in flat})
        variables = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(values[path_string(p)]) for p, _ in flat]
        )
    return LinenModel(module, variables, dict(kwargs)), x


# ------------------------------------------------------------------------- NNX models
class ConvBN(nnx.Module):
    """Conv + BatchNorm (+ ReLU); ``groups`` > 1 makes it grouped or depthwise."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: bool = True, *, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(cin, cout, (k, k), strides=stride, feature_group_count=groups,
                             use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(cout, rngs=rngs)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.bn(self.conv(x))
        return nnx.relu(y) if self.act else y


class BasicBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs) -> None:
        self.c1 = ConvBN(cin, cout, stride=stride, rngs=rngs)
        self.c2 = ConvBN(cout, cout, act=False, rngs=rngs)
        self.down = ConvBN(cin, cout, k=1, stride=stride, act=False, rngs=rngs) if (
            stride != 1 or cin != cout) else None

    def __call__(self, x: jax.Array) -> jax.Array:
        skip = x if self.down is None else self.down(x)
        return nnx.relu(self.c2(self.c1(x)) + skip)


class ResNet(nnx.Module):
    """A ResNet-style net: stem, two stages of basic blocks (one with a projection), head."""

    def __init__(self, widths: Sequence[int] = (8, 16), classes: int = 10, *, rngs: nnx.Rngs) -> None:
        self.stem = ConvBN(3, widths[0], rngs=rngs)
        self.b1 = BasicBlock(widths[0], widths[0], 1, rngs=rngs)
        self.b2 = BasicBlock(widths[0], widths[1], 2, rngs=rngs)
        self.head = nnx.Linear(widths[1], classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.b2(self.b1(self.stem(x)))
        return self.head(x.mean(axis=(1, 2)))


class InvertedResidual(nnx.Module):
    def __init__(self, cin: int, cout: int, expand: int, stride: int, *, rngs: nnx.Rngs) -> None:
        hidden = cin * expand
        self.expand = ConvBN(cin, hidden, k=1, rngs=rngs)
        self.dw = ConvBN(hidden, hidden, stride=stride, groups=hidden, rngs=rngs)
        self.project = ConvBN(hidden, cout, k=1, act=False, rngs=rngs)
        self.residual = stride == 1 and cin == cout

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class MobileNet(nnx.Module):
    """A MobileNetV2-style net: inverted residuals with depthwise convs (feature_group_count)."""

    def __init__(self, classes: int = 10, *, rngs: nnx.Rngs) -> None:
        self.stem = ConvBN(3, 8, stride=2, rngs=rngs)
        self.b1 = InvertedResidual(8, 8, 3, 1, rngs=rngs)
        self.b2 = InvertedResidual(8, 16, 3, 2, rngs=rngs)
        self.last = ConvBN(16, 32, k=1, rngs=rngs)
        self.head = nnx.Linear(32, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.last(self.b2(self.b1(self.stem(x))))
        return self.head(x.mean(axis=(1, 2)))


class EncoderLayer(nnx.Module):
    def __init__(self, d: int, heads: int, mlp: int, *, rngs: nnx.Rngs) -> None:
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=d, decode=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.fc1 = nnx.Linear(d, mlp, rngs=rngs)
        self.fc2 = nnx.Linear(mlp, d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(nnx.gelu(self.fc1(self.ln2(x))))


class Transformer(nnx.Module):
    """A small Transformer encoder over tokens: embedding, attention heads, LayerNorm, MLP."""

    def __init__(self, vocab: int = 32, d: int = 16, heads: int = 4, mlp: int = 32, layers: int = 2,
                 seq: int = 8, classes: int = 5, *, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(vocab, d, rngs=rngs)
        self.pos = nnx.Param(jax.random.normal(rngs.params(), (seq, d)) * 0.1)
        self.layers = nnx.List([EncoderLayer(d, heads, mlp, rngs=rngs) for _ in range(layers)])
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, classes, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens) + self.pos[...]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x).mean(axis=1))


class VGG(nnx.Module):
    """Conv-BN-ReLU stacks with max pooling, flattened into a Dense classifier."""

    def __init__(self, widths: Sequence[int] = (8, 16), classes: int = 10, *, rngs: nnx.Rngs) -> None:
        self.convs = nnx.List([ConvBN(a, b, rngs=rngs) for a, b in zip((3, *widths[:-1]), widths)])
        self.fc1 = nnx.Linear(widths[-1] * 4 * 4, 32, rngs=rngs)
        self.fc2 = nnx.Linear(32, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = nnx.max_pool(conv(x), window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        return self.fc2(nnx.relu(self.fc1(x)))


class DenseNet(nnx.Module):
    """DenseNet-style block: each layer's output is concatenated to its input."""

    def __init__(self, growth: int = 4, layers: int = 3, classes: int = 10, *, rngs: nnx.Rngs) -> None:
        self.stem = ConvBN(3, 8, rngs=rngs)
        self.layers = nnx.List([ConvBN(8 + i * growth, growth, rngs=rngs) for i in range(layers)])
        self.transition = ConvBN(8 + layers * growth, 16, k=1, rngs=rngs)
        self.head = nnx.Linear(16, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x)
        for layer in self.layers:
            x = jnp.concatenate([x, layer(x)], axis=-1)
        return self.head(self.transition(x).mean(axis=(1, 2)))


class MixerBlock(nnx.Module):
    def __init__(self, tokens: int, d: int, token_mlp: int, channel_mlp: int, *, rngs: nnx.Rngs) -> None:
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.tok1 = nnx.Linear(tokens, token_mlp, rngs=rngs)
        self.tok2 = nnx.Linear(token_mlp, tokens, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.ch1 = nnx.Linear(d, channel_mlp, rngs=rngs)
        self.ch2 = nnx.Linear(channel_mlp, d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.swapaxes(self.ln1(x), 1, 2)
        x = x + jnp.swapaxes(self.tok2(nnx.gelu(self.tok1(y))), 1, 2)
        return x + self.ch2(nnx.gelu(self.ch1(self.ln2(x))))


class Mixer(nnx.Module):
    """MLP-Mixer: patch embedding conv, token-mixing and channel-mixing MLPs."""

    def __init__(self, patch: int = 4, d: int = 16, classes: int = 10, *, rngs: nnx.Rngs) -> None:
        tokens = (IMAGE[1] // patch) * (IMAGE[2] // patch)
        self.patch = nnx.Conv(3, d, (patch, patch), strides=patch, padding="VALID", rngs=rngs)
        self.blocks = nnx.List([MixerBlock(tokens, d, 16, 32, rngs=rngs) for _ in range(2)])
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.patch(x)
        x = x.reshape((x.shape[0], -1, x.shape[-1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(axis=1))


class GroupNormCNN(nnx.Module):
    """Convs with GroupNorm (4 groups): pruning must keep whole, equal groups."""

    def __init__(self, classes: int = 10, *, rngs: nnx.Rngs) -> None:
        self.c1 = nnx.Conv(3, 16, (3, 3), rngs=rngs)
        self.gn = nnx.GroupNorm(16, num_groups=4, rngs=rngs)
        self.c2 = nnx.Conv(16, 16, (3, 3), rngs=rngs)
        self.head = nnx.Linear(16, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.c2(nnx.relu(self.gn(self.c1(x)))))
        return self.head(x.mean(axis=(1, 2)))


class AutoEncoder(nnx.Module):
    """Strided conv encoder and ConvTranspose decoder back to an image."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.enc1 = nnx.Conv(3, 16, (3, 3), strides=2, rngs=rngs)
        self.enc2 = nnx.Conv(16, 16, (3, 3), rngs=rngs)
        self.dec = nnx.ConvTranspose(16, 8, (2, 2), strides=(2, 2), rngs=rngs)
        self.out = nnx.Conv(8, 3, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.enc2(nnx.relu(self.enc1(x))))
        return self.out(nnx.relu(self.dec(x)))


class TiedLM(nnx.Module):
    """A token model whose output projection reuses the embedding (weight tying)."""

    def __init__(self, vocab: int = 32, d: int = 16, hidden: int = 32, *, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(vocab, d, rngs=rngs)
        self.fc1 = nnx.Linear(d, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, d, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens)
        x = x + self.fc2(nnx.relu(self.fc1(x)))
        return self.embed.attend(x)


# ------------------------------------------------------------------------- linen models
class LinenResNet(nn.Module):
    """A linen ResNet-style net whose widths are a tuple field (re-created after pruning)."""

    widths: Sequence[int] = (8, 16)
    classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        def conv_bn(y: jax.Array, c: int, k: int = 3, stride: int = 1) -> jax.Array:
            y = nn.Conv(c, (k, k), strides=stride, use_bias=False)(y)
            return nn.BatchNorm(use_running_average=not train)(y)

        x = nn.relu(conv_bn(x, self.widths[0]))
        for i, w in enumerate(self.widths):
            stride = 1 if i == 0 else 2
            y = nn.relu(conv_bn(x, w, stride=stride))
            y = conv_bn(y, w)
            skip = x if (stride == 1 and x.shape[-1] == w) else conv_bn(x, w, k=1, stride=stride)
            x = nn.relu(y + skip)
        return nn.Dense(self.classes)(x.mean(axis=(1, 2)))


class LinenMobileNet(nn.Module):
    """A linen inverted-residual net with a depthwise conv; ``expand`` sets the hidden width."""

    width: int = 8
    expand: int = 4
    classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        bn = lambda: nn.BatchNorm(use_running_average=not train)  # noqa: E731
        x = nn.relu(bn()(nn.Conv(self.width, (3, 3), strides=2, use_bias=False)(x)))
        hidden = self.width * self.expand
        y = nn.relu6(bn()(nn.Conv(hidden, (1, 1), use_bias=False)(x)))
        y = nn.relu6(bn()(nn.Conv(hidden, (3, 3), feature_group_count=hidden, use_bias=False)(y)))
        x = x + bn()(nn.Conv(self.width, (1, 1), use_bias=False)(y))
        return nn.Dense(self.classes)(x.mean(axis=(1, 2)))


class LinenTransformer(nn.Module):
    """A linen Transformer encoder layer stack over float features."""

    d: int = 16
    heads: int = 4
    mlp: int = 32
    layers: int = 1
    classes: int = 5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.Dense(self.d)(x)
        for _ in range(self.layers):
            x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(nn.LayerNorm()(x))
            y = nn.Dense(self.mlp)(nn.LayerNorm()(x))
            x = x + nn.Dense(self.d)(nn.gelu(y))
        return nn.Dense(self.classes)(nn.LayerNorm()(x).mean(axis=1))


class LinenHardcoded(nn.Module):
    """A linen CNN whose hidden width 12 is hard-coded: SPA cannot re-create it."""

    classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(12, (3, 3))(x)))
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        return nn.Dense(self.classes)(x.mean(axis=(1, 2)))


def _nnx(cls: type, shape: tuple[int, ...] = IMAGE, dtype: Any = jnp.float32, **kw: Any):
    def build(init_values: bool = False, seed: int = 0):
        return _finish_nnx(cls(rngs=nnx.Rngs(seed), **kw), shape, init_values, dtype)

    return build


def _linen(module: nn.Module, shape: tuple[int, ...] = IMAGE):
    def build(init_values: bool = False, seed: int = 0):
        return _finish_linen(module, shape, init_values, {"train": False})

    return build


# name -> builder(init_values=False, seed=0) -> (model, example input)
MODELS: dict[str, Callable[..., tuple[Any, jax.Array]]] = {
    "nnx_resnet": _nnx(ResNet),
    "nnx_mobilenet": _nnx(MobileNet),
    "nnx_transformer": _nnx(Transformer, (2, 8), jnp.int32),
    "nnx_vgg": _nnx(VGG),
    "nnx_densenet": _nnx(DenseNet),
    "nnx_mixer": _nnx(Mixer),
    "nnx_groupnorm": _nnx(GroupNormCNN),
    "nnx_autoencoder": _nnx(AutoEncoder),
    "nnx_tied_lm": _nnx(TiedLM, (2, 8), jnp.int32),
    "linen_resnet": _linen(LinenResNet()),
    "linen_mobilenet": _linen(LinenMobileNet()),
    "linen_transformer": _linen(LinenTransformer(), (2, 8, 6)),
    "linen_hardcoded": _linen(LinenHardcoded()),
}
