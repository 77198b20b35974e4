"""``make demo``: prune a ResNet-18 end to end and show what happened.

Builds ResNet-18 in code (random weights: nothing is downloaded), prunes 50 % of
every channel group by L1 norm, checks the result three ways (the pruned module vs
the pruned ONNX, the removal-equals-zeroing oracle, onnxruntime latency), and writes
the files to ``spa-demo/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

import spa_core
from spa_core.io import save_model
from spa_core.runtime import session
from spa_core.testing import assert_oracle

from .files import save_module
from .sample_models import ResNet18
from .validate import module_outputs, relative_error


def latency_ms(model, x: np.ndarray, repeats: int = 10) -> float:
    sess = session(model, threads=2)
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main(out_dir: str = "spa-demo", ratio: float = 0.5) -> int:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = ResNet18().eval()
    x = torch.randn(1, 3, 224, 224)
    print(f"ResNet-18 (built in code, random weights), input {tuple(x.shape)}; pruning {ratio:.0%} of each group by l1")
    t0 = time.perf_counter()
    result = spa_core.prune(model, x, ratio=ratio, criterion="l1")
    elapsed = time.perf_counter() - t0
    analysis = result.analysis
    print(f"  export + analyse + prune + apply to the module: {elapsed:.1f} s "
          f"({len(analysis.groups)} channel groups, {analysis.n_channels} prunable channels)")
    print(f"  barriers: {dict(analysis.blocked_reasons)}")
    print(f"  {result.report.summary()}")
    err_module = relative_error(module_outputs(result.model, (x,)),
                                list(spa_core.runtime.run_model(result.onnx, {"input": x.numpy()}).values()))
    err_oracle = assert_oracle(result, rtol=1e-4)
    print(f"  pruned nn.Module vs pruned ONNX (onnxruntime): max relative error {err_module:.1e}")
    print(f"  oracle (pruned == original with removed channels zeroed): max relative error {err_oracle:.1e}")
    before, after = latency_ms(result.original_onnx, x.numpy()), latency_ms(result.onnx, x.numpy())
    print(f"  onnxruntime latency (2 threads): {before:.1f} ms -> {after:.1f} ms ({before / after:.2f}x faster)")
    out = Path(out_dir)
    save_model(result.original_onnx, out / "resnet18.onnx")
    save_model(result.onnx, out / "resnet18-pruned.onnx")
    result.plan.save(out / "plan.json")
    save_module(result.model, str(out / "resnet18-pruned.pt"))
    print(f"  wrote {out}/resnet18.onnx, resnet18-pruned.onnx, resnet18-pruned.pt, plan.json")
    print(f"  first layers now: conv1 {tuple(result.model.conv1.weight.shape)}, "
          f"layer1.0.conv1 {tuple(result.model.layer1[0].conv1.weight.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
