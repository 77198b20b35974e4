"""The model catalogue of ``coverage_torch.py``: torchvision and a sample of timm.

Every model is built with random weights (nothing is downloaded), its normalisation
statistics and constant-initialised parameters randomised (so that a channel bound to
the wrong tensor, or a branch zero-initialised into silence, shows in the oracle), and
paired with the smallest example input it accepts (64x64 where possible).

* torchvision: every classification model, the segmentation models (whole, the ``'out'``
  output only) and the backbones of the detection models (their heads call ``nms``,
  which the CPU torch cannot run, see ``torchvision_compat.py``).
* timm: a deterministic sample that covers every model module (family) first, then
  further distinct architectures per family; within an architecture the smallest variant.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torchvision_compat import ensure_torchvision

SMALL_SIDES = (64, 96, 128, 160, 224)  # tried in turn until the model runs
NUM_CLASSES = 1000
SEG_CLASSES = 21


@dataclass
class Built:
    """A model ready for pruning, with its example input and the layers TP must keep."""

    model: nn.Module
    example: torch.Tensor
    ignored: list[nn.Module] = field(default_factory=list)
    note: str = ""


# ---------------------------------------------------------------------------- helpers
class OutOnly(nn.Module):
    """A torchvision segmentation model reduced to its ``'out'`` tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Randomise normalisation statistics and every constant-valued float parameter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name in ("running_mean", "running_var"):
                buf = getattr(module, name, None)
                if isinstance(buf, torch.Tensor) and buf.is_floating_point():
                    rnd = torch.rand(buf.shape, generator=gen)
                    buf.copy_(rnd + 0.5 if name == "running_var" else rnd - 0.5)
        for name, p in model.named_parameters():
            if p.numel() > 1 and p.is_floating_point() and bool((p == p.flatten()[0]).all()):
                rnd = torch.rand(p.shape, generator=gen)
                p.copy_(rnd + 0.5 if name.endswith("weight") or "gamma" in name else (rnd - 0.5) * 0.2)


def pick_input(model: nn.Module, sides: tuple[int, ...]) -> torch.Tensor:
    """The first square input, smallest first, that ``model`` accepts."""
    model.eval()
    errors = []
    for side in sides:
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(side))
        try:
            with torch.no_grad():
                model(x)
            return x
        except Exception as exc:
            errors.append(f"{side}: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}")
    raise RuntimeError("the model runs on none of the input sizes tried (" + "; ".join(errors) + ")")


def classifier_layers(model: nn.Module, classes: int) -> list[nn.Module]:
    """Linear/conv layers producing ``classes`` outputs: the final classifier(s) TP must keep."""
    found = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == classes:
            found.append(m)
        elif isinstance(m, nn.modules.conv._ConvNd) and m.out_channels == classes:
            found.append(m)
    return found


def parameter_count(build: Callable[[], nn.Module]) -> int | None:
    """Parameters of the model ``build`` makes, counted on the meta device (no memory).

    ``None`` when the constructor cannot run on the meta device (it computes with values).
    """
    try:
        with torch.device("meta"):
            return sum(p.numel() for p in build().parameters())
    except Exception:
        return None


def check_size(build: Callable[[], nn.Module], max_params: int) -> None:
    count = parameter_count(build)
    if count is not None and count > max_params:
        raise SkipModel(f"skipped: {count / 1e6:.0f} M parameters > --max-params {max_params / 1e6:.0f} M")


# ---------------------------------------------------------------------------- torchvision
# Inputs a model needs beyond the default 64x64, and constructor arguments.
TV_SIDES: dict[str, tuple[int, ...]] = {
    # AdaptiveAvgPool2d to 6x6 / 7x7 exports to ONNX only from a multiple of that size
    **{n: (224,) for n in ("alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")},
    "inception_v3": (75, 96, 299),
    "vit_h_14": (56,),  # built with image_size=56 (TV_KWARGS)
    "maxvit_t": (224,),  # every stage must be a multiple of its 7x7 partitions
    "ssd300_vgg16": (300,),
    "ssdlite320_mobilenet_v3_large": (320,),
}
TV_KWARGS: dict[str, dict[str, Any]] = {
    "vit_b_16": {"image_size": 64}, "vit_b_32": {"image_size": 64}, "vit_l_16": {"image_size": 64},
    "vit_l_32": {"image_size": 64}, "vit_h_14": {"image_size": 56},
    "googlenet": {"init_weights": True, "aux_logits": False}, "inception_v3": {"init_weights": True, "aux_logits": False},
}


def torchvision_names() -> list[str]:
    """``torchvision:<kind>:<name>`` for classification, segmentation and detection models."""
    ensure_torchvision()
    import torchvision.models as tvm

    out = [f"torchvision:cls:{n}" for n in tvm.list_models(module=tvm)]
    out += [f"torchvision:seg:{n}" for n in tvm.list_models(module=tvm.segmentation)]
    out += [f"torchvision:det:{n}" for n in tvm.list_models(module=tvm.detection)]
    return round_robin(out)


def round_robin(specs: list[str]) -> list[str]:
    """Every architecture's smallest variant first, then the next size of each, and so on.

    A sweep cut short has then covered as many architectures as it could.
    """
    families: dict[str, list[str]] = {}
    for spec in specs:
        kind, _, name = spec.rpartition(":")
        families.setdefault(f"{kind}:{architecture_stem(name)}", []).append(spec)
    ordered = [sorted(v, key=lambda s: size_key(s.rpartition(":")[2])) for v in families.values()]
    out = []
    for depth in range(max(map(len, ordered), default=0)):
        out += [v[depth] for v in ordered if depth < len(v)]
    return out


def _torchvision_builder(kind: str, name: str) -> Callable[[], nn.Module]:
    import torchvision.models as tvm

    kwargs = dict(TV_KWARGS.get(name, {}), weights=None)
    if kind in ("seg", "det"):
        kwargs["weights_backbone"] = None
    if kind == "seg":
        kwargs["num_classes"] = SEG_CLASSES
        return lambda: OutOnly(tvm.get_model(name, **kwargs))
    if kind == "det":
        kwargs["num_classes"] = 91
        return lambda: tvm.get_model(name, **kwargs).backbone
    return lambda: tvm.get_model(name, **kwargs)


def build_torchvision(kind: str, name: str) -> Built:
    build = _torchvision_builder(kind, name)
    model = build().eval()
    randomize(model)
    x = pick_input(model, TV_SIDES.get(name, SMALL_SIDES))
    if kind == "det":  # a backbone has no classifier; TP may prune its output channels
        return Built(model, x, [], "backbone")
    classes = SEG_CLASSES if kind == "seg" else NUM_CLASSES
    return Built(model, x, classifier_layers(model, classes), "segmentation, 'out'" if kind == "seg" else "")


# ---------------------------------------------------------------------------- timm
SIZE_WORDS = (
    "atto femto pico nano xxtiny xtiny tiny mini micro xxs xs small s0 s1 s2 s medium m base b "
    "plus large l xl xxl huge h giant g gigantic enormous"
).split()
# Never sampled: billion-parameter variants (the --max-params guard catches the rest).
TOO_BIG = re.compile(r"xlarge|huge|giant|gigantic|enormous|xxl|\d+b(_|$)|_[eg]_")


def _tokens(name: str) -> list[str]:
    return name.split("_")


# Name tokens that mark a variant of the same architecture (weights, heads, distillation).
VARIANT_WORDS = set("distilled dist dagger enc align merge jx tv ssld ft in1k in22k".split())


def architecture_stem(name: str) -> str:
    """A model name without size words, numbers and variant marks (``resnet50d`` -> ``resnetd``)."""
    parts = []
    for tok in _tokens(name):
        bare = re.sub(r"\d+", "", tok)
        if bare and bare not in SIZE_WORDS and bare not in VARIANT_WORDS:
            parts.append(bare)
    return "_".join(parts)


def size_key(name: str) -> tuple[float, int, str]:
    """Smaller-looking names first: size words, then the numbers in the name."""
    rank = min((SIZE_WORDS.index(t) for t in _tokens(name) if t in SIZE_WORDS), default=len(SIZE_WORDS) // 2)
    numbers = sum(int(n) for n in re.findall(r"\d+", name))
    return (rank, numbers, name)


def timm_sample(count: int) -> list[str]:
    """``timm:<name>`` for ``count`` models: every family first, then more architectures per family."""
    ensure_torchvision()
    import timm

    per_module: list[list[str]] = []
    for module in sorted(timm.list_modules()):
        stems: dict[str, list[str]] = {}
        for n in timm.list_models(module=module):
            if n.startswith("test_") or TOO_BIG.search(n):
                continue
            stems.setdefault(architecture_stem(n), []).append(n)
        picks = sorted((min(v, key=size_key) for v in stems.values()), key=size_key)
        if picks:
            per_module.append(picks)
    chosen: list[str] = []
    depth = 0
    while len(chosen) < count and any(depth < len(p) for p in per_module):
        for picks in per_module:
            if depth < len(picks) and len(chosen) < count:
                chosen.append(picks[depth])
        depth += 1
    return [f"timm:{n}" for n in chosen]


def _timm_builder(name: str, side: int | None) -> Callable[[], nn.Module]:
    import timm

    kwargs: dict[str, Any] = {"pretrained": False}
    if side is not None:
        kwargs["img_size"] = side
    return lambda: timm.create_model(name, **kwargs)


def build_timm(name: str, max_params: int, native: bool = False) -> Built:
    """A timm model at 64x64 (``img_size=64`` where it takes one), else at its smallest working side;
    with ``native``, the default model at its own input size (for models that run at a small side in
    torch but cannot be exported there, e.g. an adaptive pool that would have to upsample)."""
    small = _timm_builder(name, 64)
    try:
        if native:
            raise LookupError("the default model at its own input size")
        check_size(small, max_params)
        model = small().eval()
        x = pick_input(model, (64,))
        note = "img_size=64"
    except SkipModel:
        raise
    except Exception:  # no img_size argument, or not 64: the default model, smallest side it takes
        default = _timm_builder(name, None)
        check_size(default, max_params)
        model = default().eval()
        cfg = getattr(model, "pretrained_cfg", None) or {}
        side = int(cfg.get("input_size", (3, 224, 224))[-1])
        small_sides = () if native or cfg.get("fixed_input_size") else tuple(s for s in SMALL_SIDES if s < side)
        x = pick_input(model, small_sides + (side,))
        note = "" if x.shape[-1] == 64 else f"{x.shape[-1]}x{x.shape[-1]}"
    randomize(model)
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    ignored = [m for m in (head.modules() if isinstance(head, nn.Module) else [])
               if isinstance(m, nn.Linear | nn.modules.conv._ConvNd)]
    return Built(model, x, ignored or classifier_layers(model, NUM_CLASSES), note)


class SkipModel(Exception):
    """The model is left out of the sweep (too large for this machine)."""


def build(spec: str, max_params: int, native: bool = False) -> Built:
    """Build ``torchvision:<kind>:<name>`` or ``timm:<name>`` (``native``: timm models at their own
    input size)."""
    ensure_torchvision()
    source, _, rest = spec.partition(":")
    if source == "torchvision":
        kind, _, name = rest.partition(":")
        check_size(_torchvision_builder(kind, name), max_params)
        return build_torchvision(kind, name)
    if source == "timm":
        return build_timm(rest, max_params, native)
    raise ValueError(f"unknown model source in '{spec}'")
