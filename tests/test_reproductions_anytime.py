"""The "pruning at any time" reproductions run end to end in their ``--quick`` form.

Each script runs in a subprocess (as a user would run it) writing to a temporary folder;
the Markdown table, the CSV and the PNG must be there, with one row per method and
setting and every accuracy in [0, 1].
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from spa_core.datasets import fashion_mnist_dir

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (fashion_mnist_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST is not installed"
)


def run_quick(script: str, out: Path, name: str, *options: str) -> list[dict[str, str]]:
    """Run ``reproductions/SCRIPT --quick [OPTIONS]`` and return the CSV rows it wrote."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "reproductions" / script), "--quick", "--out-dir", str(out), "--name", name,
         *options],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for ext in ("md", "csv", "png"):
        path = out / f"{name}.{ext}"
        assert path.is_file() and path.stat().st_size > 0, f"{path} missing"
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / f"{name}.csv").open() as f:
        rows = list(csv.DictReader(f))
    table = [line for line in (out / f"{name}.md").read_text().splitlines() if line.startswith("|")]
    assert "accuracy" in table[0] and len(table) == len(rows) + 2  # header, rule, one line per row
    for row in rows:
        assert 0.0 <= float(row["accuracy"]) <= 1.0, row
    return rows


def test_before_training_quick(tmp_path: Path) -> None:
    rows = run_quick("before_training.py", tmp_path, "bt")
    seen = {(r["criterion"], float(r["sparsity"])) for r in rows}
    assert ("dense", 0.0) in seen
    for criterion in ("snip", "grasp", "crop", "l1", "random", "random-scratch"):
        assert (criterion, 0.9) in seen
    widths = {(r["allocation"], r["criterion"]): r["params_kept"] for r in rows}
    for allocation in ("global", "local"):  # the scratch baseline trains random's widths afresh
        assert widths[(allocation, "random-scratch")] == widths[(allocation, "random")]
    for r in rows:
        if r["criterion"] != "dense":  # the parameter budget is met
            assert float(r["params_kept"]) <= 1.0 - float(r["sparsity"]) + 1e-6, r


def test_before_training_lenet5_ranks_per_parameter_but_keeps_random_uniform(tmp_path: Path) -> None:
    """LeNet-5 with scores per parameter (the knapsack allocation): snip spends the budget on the
    cheap convolutions, while the random baseline keeps its own, uniform allocation."""
    rows = run_quick("before_training.py", tmp_path, "lenet", "--model", "lenet5", "--allocation", "global",
                     "--normalize", "params", "--reduce", "sum", "--criteria", "snip", "random")
    widths = {r["criterion"]: [int(w) for w in r["widths"].split("-")] for r in rows}
    assert widths["dense"] == [20, 50, 500, 10]
    kept = [w / d for w, d in zip(widths["random"][:3], widths["dense"][:3], strict=True)]
    assert all(0.15 <= k <= 0.5 for k in kept), widths  # about sqrt(10 %) of every layer, give or take chance
    snip = [w / d for w, d in zip(widths["snip"][:3], widths["dense"][:3], strict=True)]
    assert snip[0] > kept[0] and snip[2] < kept[2], widths  # wider first convolution, narrower hidden layer
    for r in rows:
        if r["criterion"] != "dense":
            assert float(r["params_kept"]) <= 0.1 + 1e-6, r


def test_init_allocation_quick(tmp_path: Path) -> None:
    rows = run_quick("init_allocation.py", tmp_path, "ia")
    assert [r["profile"] for r in rows] == ["uniform (random pruning)", "early x2"]
    assert {r["widths"] for r in rows} == {"5-5-9-19", "8-8-8-16"}
    for r in rows:  # the same parameter budget: 90 % removed, each profile as wide as fits
        assert 0.09 <= float(r["params_kept"]) <= 0.1, r


def test_init_allocation_cut_equals_the_initial_network_with_the_rest_zeroed() -> None:
    import numpy as np
    import torch

    from reproductions.before_training import cnn
    from reproductions.init_allocation import count_macs, count_params, cut

    torch.manual_seed(0)
    dense = cnn(16).eval()
    small, kept = cut(dense, [5, 3, 9, 20], np.random.default_rng(1))
    assert sum(p.numel() for p in small.parameters()) == count_params([5, 3, 9, 20])
    from spa_core.workflows import PruningSession

    for model, widths in ((dense, [16, 16, 32, 64]), (small, [5, 3, 9, 20])):  # SPA's own MACs counter agrees
        assert PruningSession.open(model.eval(), torch.zeros(1, 1, 28, 28)).original[1] == count_macs(widths)
    zeroed = cnn(16).eval()
    zeroed.load_state_dict(dense.state_dict())
    convs = [m for m in zeroed if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv, keep in zip(convs, kept, strict=True):
            gone = torch.ones(conv.out_channels, dtype=torch.bool)
            gone[keep] = False
            conv.weight[gone] = 0.0  # at initialisation a BatchNorm's shift is 0: the channel is then 0
        x = torch.rand(4, 1, 28, 28)
        torch.testing.assert_close(small.eval()(x), zeroed(x), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(small(x), dense(x), atol=1e-3)


def test_no_finetune_quick(tmp_path: Path) -> None:
    rows = run_quick("no_finetune.py", tmp_path, "nf")
    methods = {r["method"] for r in rows}
    assert methods == {"dense", "obspa-data", "obspa-data-independent", "obspa-inversion", "obspa-inversion-bn",
                       "obspa-independent", "obspa-bn", "obspa-gauss", "l1", "tp-magnitude", "tp-hessian"}
    for r in rows:
        if r["method"] != "dense":  # every method reaches (about) the same MACs
            assert abs(float(r["macs_removed"]) - float(r["macs_target"])) < 0.05, r
    text = (tmp_path / "nf.md").read_text()
    assert "OBSPA seconds per model" in text and "Data-free synthesis" in text
