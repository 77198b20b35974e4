"""Shared pieces of the engine benchmarks: models built in code, ONNX export, peak memory.

Models: ResNets of any depth (:mod:`resnets`), and torchvision's DenseNet-121,
MobileNetV2 and ViT-B/16 definitions (random weights, nothing downloaded), imported
through the documented :mod:`torchvision_compat` workaround.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import psutil
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).parent))
from resnets import resnet_of_depth  # noqa: E402

RESULTS_DIR = Path(__file__).parent / "results"


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from torchvision_compat import ensure_torchvision

        ensure_torchvision()
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return build


MODELS: dict[str, Callable[[], nn.Module]] = {
    "ResNet-50": lambda: resnet_of_depth(50),
    "ResNet-101": lambda: resnet_of_depth(101),
    "ResNet-152": lambda: resnet_of_depth(152),
    "ResNet-200": lambda: resnet_of_depth(200),
    "DenseNet-121": _torchvision("densenet121"),
    "MobileNetV2": _torchvision("mobilenet_v2"),
    "ViT-B/16": _torchvision("vit_b_16"),
}


def build(name: str, seed: int = 0) -> nn.Module:
    """The named model in eval mode with seeded random weights."""
    torch.manual_seed(seed)
    return MODELS[name]().eval()


def export(model: nn.Module, size: int = 224) -> onnx.ModelProto:
    """ONNX with BatchNorm and PyTorch names kept (``do_constant_folding=False``)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, size, size),), buf, dynamo=False, do_constant_folding=False,
                          input_names=["input"], output_names=["output"])
    return onnx.load_from_string(buf.getvalue())


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 5 ms by a thread (MiB)."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.base = self.peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def run_worker(script: Path, args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``script --worker ARGS`` in a fresh interpreter (clean memory); its last stdout line is JSON."""
    cmd = [sys.executable, str(script), "--worker", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return {"error": lines[-1][:200] if lines else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_table(name: str, text: str, data: Any) -> Path:
    """Write ``benchmarks/results/NAME.md`` (the printed table) and ``NAME.json`` (the numbers)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.md").write_text(text.rstrip() + "\n")
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    return RESULTS_DIR / f"{name}.md"
