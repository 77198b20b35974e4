"""Nothing lost: interrupted runs leave no partial output, inputs are never modified."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from resnets import resnet_of_depth  # noqa: E402

import spa_core  # noqa: E402


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    """A ResNet-50 (100 MB of weights): writing it takes long enough to interrupt."""
    import io

    path = tmp_path_factory.mktemp("big") / "resnet50.onnx"
    buf = io.BytesIO()
    torch.onnx.export(resnet_of_depth(50).eval(), (torch.randn(1, 3, 64, 64),), buf, dynamo=False,
                      do_constant_folding=False, input_names=["input"])
    path.write_bytes(buf.getvalue())
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("delay", [0.5, 2.0, 3.5, 5.0])
def test_interrupted_prune_leaves_no_partial_file(big_model, tmp_path, sig, delay):
    before = _digest(big_model)
    out = tmp_path / "pruned.onnx"
    proc = subprocess.Popen([sys.executable, "-m", "spa_core.cli", "prune", str(big_model), "-o", str(out),
                             "--ratio", "0.5", "--plan-out", str(tmp_path / "plan.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("pruned.onnx", "plan.json")]
    assert leftovers == [], leftovers
    if out.exists():  # finished before the signal: then the file is complete and valid
        onnx.checker.check_model(onnx.load(out))
    else:
        assert proc.returncode != 0
        assert "Traceback" not in err
    assert _digest(big_model) == before


def test_input_file_unchanged_after_successful_prune(big_model, tmp_path):
    before = _digest(big_model)
    spa_core.prune_onnx(big_model, ratio=0.3)
    assert _digest(big_model) == before
