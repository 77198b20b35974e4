"""PyTorch in, PyTorch out: the pruned nn.Module equals the pruned ONNX and keeps working."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch_models as tm
import zoo
from spa_torch.validate import module_outputs, relative_error

import spa_core
from spa_core.errors import FrameworkError
from spa_core.testing import assert_oracle

torch.set_num_threads(2)

MODELS = {
    **{name: (lambda n=name: zoo.build(n)) for name in zoo.ARCHITECTURES if name != "vit"},
    "lstm": lambda: (tm.Recurrent(nn.LSTM).eval(), torch.randn(5, 2, 6)),
    "gru_bidirectional": lambda: (tm.Recurrent(nn.GRU, bidirectional=True).eval(), torch.randn(5, 2, 6)),
    "multihead_attention": lambda: (tm.MHABlock().eval(), torch.randn(2, 7, 12)),
    "multihead_attention_seq_first": lambda: (tm.MHABlock(batch_first=False).eval(), torch.randn(7, 2, 12)),
    "yolo_head": lambda: (zoo.randomise_norms(tm.YoloHead()), torch.randn(1, 3, 32, 32)),
    "two_in_two_out": lambda: (tm.TwoInTwoOut().eval(), (torch.randn(2, 3, 8, 8), torch.randn(2, 7))),
    "functional_params": lambda: (tm.Functional().eval(), torch.randn(1, 3, 8, 8)),
    "conv_transpose": lambda: (zoo.randomise_norms(tm.Deconv()), torch.randn(1, 3, 16, 16)),
    "group_std_norm": lambda: (tm.GroupStdNet().eval(), torch.randn(2, 3, 8, 8)),
}


def _inputs(x):
    return x if isinstance(x, tuple) else (x,)


@pytest.fixture(scope="module", params=sorted(MODELS))
def pruned(request):
    torch.manual_seed(0)
    model, x = MODELS[request.param]()
    state = copy.deepcopy(model.state_dict())
    result = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    return request.param, model, x, state, result


def test_module_equals_pruned_onnx_and_oracle(pruned):
    name, model, x, state, result = pruned
    assert isinstance(result.model, nn.Module) and result.model is not model
    assert result.plan.removed_channels > 0, name
    from spa_core.runtime import run_model

    inputs = _inputs(x)
    names = [i.name for i in result.onnx.graph.input]
    onnx_out = list(run_model(result.onnx, {n: t.numpy() for n, t in zip(names, inputs)}).values())
    assert relative_error(module_outputs(result.model, inputs), onnx_out) <= 1e-4
    assert_oracle(result, rtol=1e-4)
    n_before = sum(p.numel() for p in model.parameters())
    n_after = sum(p.numel() for p in result.model.parameters())
    assert n_after < n_before


def test_original_untouched(pruned):
    name, model, x, state, result = pruned
    now = model.state_dict()
    assert state.keys() == now.keys()
    assert all(torch.equal(state[k], now[k]) for k in state)


def test_plan_reapplied_to_fresh_model_reproduces_state_dict(pruned):
    name, model, x, state, result = pruned
    torch.manual_seed(123)
    fresh, _ = MODELS[name]()  # same architecture, other weights
    plan = spa_core.Plan.from_json(result.plan.to_json())
    rebuilt = spa_core.apply_plan(fresh, plan, x).model
    rebuilt.load_state_dict(result.model.state_dict())
    got = module_outputs(rebuilt, _inputs(x))
    want = module_outputs(result.model, _inputs(x))
    assert relative_error(got, want) == 0.0


def test_save_load_train_and_script(pruned, tmp_path):
    name, model, x, state, result = pruned
    pruned_model = result.model
    buf = io.BytesIO()
    torch.save(pruned_model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert relative_error(module_outputs(loaded, _inputs(x)), module_outputs(pruned_model, _inputs(x))) == 0.0
    # one training step runs and changes the weights
    trainable = copy.deepcopy(pruned_model).train()
    opt = torch.optim.SGD(trainable.parameters(), lr=0.1)
    out = trainable(*_inputs(x))
    loss = sum(o.float().pow(2).mean() for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    before = [p.detach().clone() for p in trainable.parameters()]
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, trainable.parameters()))
    # torch.export sees consistent shapes
    exported = torch.export.export(pruned_model.eval(), _inputs(x))
    assert exported is not None


def test_print_shows_new_widths():
    model, x = zoo.build("resnet_basic")
    result = spa_core.prune(model, x, ratio=0.5)
    text = repr(result.model)
    assert "Conv2d(3, 8," in text and "BatchNorm2d(8," in text
    conv = result.model.layers[0].conv1
    assert conv.in_channels == conv.weight.shape[1] and conv.out_channels == conv.weight.shape[0]


def test_jit_script_of_pruned_model():
    model, x = zoo.build("mobilenetv2")
    result = spa_core.prune(model, x, ratio=0.5)
    scripted = torch.jit.script(result.model)
    assert relative_error(module_outputs(scripted, (x,)), module_outputs(result.model, (x,))) <= 1e-5
    dw = result.model.features[1].block[3]
    assert dw.groups == dw.in_channels == dw.out_channels


def test_inplace_prunes_the_given_module():
    model, x = zoo.build("resnet_basic")
    result = spa_core.prune(model, x, ratio=0.5, inplace=True)
    assert result.model is model and model.stem[0].out_channels == 8


def test_lstm_hidden_size_consistent():
    torch.manual_seed(0)
    model = tm.Recurrent(nn.LSTM).eval()
    result = spa_core.prune(model, torch.randn(5, 2, 6), ratio=0.5)
    rnn = result.model.rnn
    assert rnn.hidden_size == 8 and rnn.weight_hh_l0.shape == (32, 8) and rnn.weight_ih_l1.shape == (32, 8)


def test_multihead_attention_prunes_whole_heads():
    torch.manual_seed(0)
    result = spa_core.prune(tm.MHABlock().eval(), torch.randn(2, 7, 12), ratio=0.5)
    attn = result.model.attn
    assert attn.num_heads == 2 and attn.head_dim == 4


def test_group_statistics_norm_of_another_library_loses_whole_groups():
    """A module that reshapes to ``self.groups`` groups in forward() (timm's EvoNorm S0-S2) is
    pruned, not left out: whole groups go, and its ``groups`` follows the new width."""
    torch.manual_seed(0)
    model, x = tm.GroupStdNet().eval(), torch.randn(2, 3, 8, 8)
    result = spa_core.prune(model, x, ratio=0.5, criterion="l1")
    assert not result.extras.get("auto_ignored")
    for name, group_size in (("norm1", 4), ("norm2", 2), ("norm3", 4)):
        norm = getattr(result.model, name)
        width = norm.weight.shape[0]
        assert width < getattr(model, name).weight.shape[0], name
        assert norm.groups * group_size == width, (name, norm.groups, width)
    assert_oracle(result, rtol=1e-4)


def test_hard_coded_widths_are_left_unpruned_or_get_a_clear_error():
    model, x = zoo.build("vit")  # its attention reshapes to a fixed head count in forward()
    result = spa_core.prune(model, x, ratio=0.5)  # pruned again without the attention layers
    assert result.extras["auto_ignored"] and result.report.macs_reduction > 0
    with torch.no_grad():
        result.model(x)
    with pytest.raises(FrameworkError, match="hard-codes a width"):  # in place there is no second try
        spa_core.prune(model, x, ratio=0.5, inplace=True)


def test_cli_refuses_pickles_without_trust(tmp_path):
    model, x = zoo.build("resnet_basic")
    path = tmp_path / "model.pt"
    torch.save(model, path)
    out = tmp_path / "pruned.pt"
    cmd = [sys.executable, "-m", "spa_core.cli", "prune", str(path), "-o", str(out), "--framework", "torch",
           "--input-shape", "1,3,32,32", "--ratio", "0.5"]
    refused = subprocess.run(cmd, capture_output=True, text=True)
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr and not out.exists()
    import os

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    ok = subprocess.run(cmd + ["--trust-pickle"], capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert ok.returncode == 0, ok.stderr
    pruned_model = torch.load(out, weights_only=False)
    assert pruned_model.stem[0].out_channels == 8
    assert (tmp_path / "pruned.onnx").exists()
    x = torch.randn(1, 3, 32, 32)
    import onnx

    from spa_core.runtime import run_model

    ref = list(run_model(onnx.load(tmp_path / "pruned.onnx"), {"input": x.numpy()}).values())
    assert relative_error(module_outputs(pruned_model, (x,)), ref) <= 1e-4
    assert np.isfinite(ref[0]).all()


class DictOutputs(nn.Module):
    """Returns a dict holding a tensor and a list, like a detection backbone's feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.p3 = nn.Conv2d(8, 4, 1)
        self.p4 = nn.Conv2d(8, 5, 1)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return {"p3": self.p3(h), "rest": [self.p4(h), torch.sigmoid(self.p3(h))]}


def test_dict_and_nested_outputs_are_compared_in_export_order():
    from spa_torch.validate import flatten_outputs

    model, x = DictOutputs().eval(), torch.randn(1, 3, 8, 8)
    result = spa_core.prune(model, x, ratio=0.5)
    assert result.plan.removed_channels > 0
    assert_oracle(result, rtol=1e-4)
    with torch.no_grad():
        shapes = [tuple(t.shape) for t in flatten_outputs(result.model(x))]
    assert shapes == [(1, 4, 6, 6), (1, 5, 6, 6), (1, 4, 6, 6)]
