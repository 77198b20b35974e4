"""The 'any framework' and 'any architecture' reproductions run end to end (``--quick``).

Each script runs in a subprocess with ``--quick`` (a pipeline check on a few hundred
images; the accuracies mean nothing) and writes its table to a temporary folder; the
tests check the files and that every framework / architecture produced a pruned model
smaller than the original. Slow (minutes on two shared cores): marked ``slow``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spa_core.datasets import fashion_mnist_dir

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "reproductions"
sys.path.insert(0, str(SCRIPTS))  # arch_models: the architecture list the test expects

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
                       reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"),
]


def run_quick(script: str, out: Path, *extra: str) -> list[dict[str, str]]:
    """Run ``reproductions/SCRIPT --quick --out-dir OUT`` and return its CSV rows."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "adapters")]))
    proc = subprocess.run([sys.executable, str(SCRIPTS / script), "--quick", "--out-dir", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stem = Path(script).stem + "_quick"
    for suffix in (".md", ".csv", ".png"):
        assert (out / f"{stem}{suffix}").stat().st_size > 0, f"{stem}{suffix} missing"
    assert "| " in proc.stdout  # the table is printed
    with (out / f"{stem}.csv").open() as f:
        return list(csv.DictReader(f))


def _mxnet_ready() -> bool:
    return (REPO / ".venv-mxnet" / "bin" / "python").is_file() or bool(os.environ.get("SPA_MXNET_PYTHON"))


def test_any_framework_quick(tmp_path: Path) -> None:
    frameworks = "torch,keras,flax" + (",mxnet" if _mxnet_ready() else "")
    rows = run_quick("any_framework.py", tmp_path, "--frameworks", frameworks)
    names = {"torch": "PyTorch", "keras": "Keras", "flax": "Flax NNX", "mxnet": "MXNet Gluon"}
    assert {r["framework"] for r in rows} == {names[k] for k in frameworks.split(",")}
    for r in rows:
        before, after = (int(v.replace(",", "")) for v in r["macs"].split(" -> "))
        assert 0 < after < before, r
        assert 0.0 <= float(r["acc_finetuned"]) <= 1.0


def test_any_architecture_quick(tmp_path: Path) -> None:
    from arch_models import MODELS

    rows = run_quick("any_architecture.py", tmp_path)
    assert {r["model"] for r in rows} == set(MODELS)
    spa = [r for r in rows if r["tool"] == "SPA"]
    assert len(spa) == len(MODELS)
    for r in spa:
        assert float(r["macs_kept"].rstrip("%")) <= 50.0 + 1e-6, r  # the MACs budget is met
    for r in rows:  # TP may stop short of the budget (its ViT floor is ~60 % of the MACs); it must still prune
        if r["tool"] == "Torch-Pruning" and r["tool_ratio"] != "failed":
            assert float(r["macs_kept"].rstrip("%")) < 100.0, r

