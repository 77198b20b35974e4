"""The torchvision/timm coverage benchmark runs, and SPA's oracle holds on what it prunes.

Needs torchvision and timm (imported through ``benchmarks/torchvision_compat.py``);
skipped where they are not installed.
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

pytestmark = pytest.mark.slow


def test_torchvision_imports_with_compat_shim():
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    code = (
        "import torch; from torchvision_compat import ensure_torchvision; ensure_torchvision();"
        "import torchvision; m = torchvision.models.resnet18().eval(); print(tuple(m(torch.randn(1, 3, 32, 32)).shape))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=BENCH, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 1000)" in out.stdout


def test_quick_sweep_produces_rows_and_oracle_holds(tmp_path):
    for mod in ("torchvision", "timm", "torch_pruning"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed")
    stem = tmp_path / "quick"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "coverage_torch.py"), "--quick", "--output", str(stem), "--timeout", "300"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with stem.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 5
    ran = [r for r in rows if not r["skipped"]]
    assert ran, "every model was skipped"
    pruned = [r for r in ran if r["spa_ok"] == "True"]
    assert pruned, [r["spa_reason"] for r in ran]
    bad = {r["model"]: r["spa_reason"] for r in pruned if r["spa_oracle"] != "True"}
    assert not bad, bad
    assert "SPA" in stem.with_suffix(".md").read_text()
