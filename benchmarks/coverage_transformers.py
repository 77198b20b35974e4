"""Coverage of transformers: Hugging Face and timm models, heads and MLP units pruned exactly.

Every tiny model of ``spa_torch.hf.tiny`` (BERT, DistilBERT, GPT-2, ViT, a LLaMA-style
decoder with grouped-query attention and a SwiGLU MLP, and more families: RoBERTa, OPT,
Mistral, Qwen2/3, Gemma, Phi-3, GPT-NeoX; timm ViT, DeiT, Swin; random weights, nothing
downloaded) is pruned at ``--ratio`` (default 0.5, by L1): the
``transformers`` models through :func:`spa_torch.hf.prune_transformer` (config rewritten
to match), the timm models through the generic :func:`spa_core.prune`. Per model it
records parameters and MACs removed, the oracle (pruned ONNX == original with removed
channels zeroed, rtol 1e-4), the native pruned model against the pruned ONNX, query and
key/value heads per layer before -> after, MLP width, whether the config alone describes
the result (``from_pretrained`` without SPA) and whether the saved model reloads to the same
outputs (and ``generate`` runs, for causal LMs), and the wall time of the pruning::

    python benchmarks/coverage_transformers.py              # all models, ~2 min on 2 cores
    python benchmarks/coverage_transformers.py llama-gqa vit --ratio 0.25
    python benchmarks/coverage_transformers.py llama-gqa+hidden   # the embedding width too

Prints the table and writes ``benchmarks/results/coverage_transformers.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torchvision_compat import ensure_torchvision  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HIDDEN = ["llama-gqa+hidden", "mistral-gqa+hidden", "qwen3-gqa+hidden"]  # embedding width pruned too
COLUMNS = [
    ("model", "model"), ("class", "class"), ("params", "params before -> after"), ("params_removed", "params removed"),
    ("macs_removed", "MACs removed"), ("heads", "heads q/kv per layer"), ("mlp", "MLP width"),
    ("hidden", "embedding width"),
    ("oracle", "oracle (rel. err.)"), ("native", "native vs ONNX"), ("config", "config"),
    ("reload", "reloaded vs pruned"), ("seconds", "time (s)"),
]


def _heads(model: Any) -> str:
    from spa_torch.hf import attention_layers

    layers = list(attention_layers(model).values())
    kinds = sorted({(h.query, h.key_value) for h in layers})
    return ", ".join(f"{q}/{kv}" for q, kv in kinds) or "-"


def _mlp(model: Any) -> str:
    from spa_torch.hf.config import mlp_widths

    widths = sorted(set(mlp_widths(model).values()))
    return ", ".join(map(str, widths)) or "-"


def reload_check(model: Any, exact: bool, x: Any) -> str:
    """``save_pretrained`` then ``from_pretrained`` (``load_pruned`` when the config cannot say it
    all): the largest output difference, and whether greedy ``generate`` runs on the reloaded model."""
    import tempfile

    import numpy as np
    import torch
    from spa_torch.hf import ExportWrapper, load_pruned
    from spa_torch.validate import module_outputs

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        again = (type(model).from_pretrained(folder) if exact else load_pruned(folder)).eval()
    diff = float(np.abs(module_outputs(ExportWrapper(again), (x,))[0] - module_outputs(ExportWrapper(model), (x,))[0]).max())
    text = f"{'from_pretrained' if exact else 'load_pruned'} {diff:.0e}"
    if type(model).__name__.endswith("ForCausalLM") or type(model).__name__.endswith("LMHeadModel"):
        with torch.no_grad():
            ids = again.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=4, min_new_tokens=4, do_sample=False)
        text += f", generate +{ids.shape[1] - x.shape[1]} tokens"
    return text


def measure(name: str, ratio: float) -> dict[str, Any]:
    """Prune one tiny model and return its table row."""
    import torch
    from spa_torch.hf import ExportWrapper, example_inputs, prune_transformer, tiny
    from spa_torch.hf.hidden import embedding_width
    from spa_torch.validate import module_outputs, relative_error

    import spa_core
    from spa_core.oracle import oracle_error
    from spa_core.runtime import run_model

    base, _, option = name.partition("+")
    model = tiny.build(base)
    row: dict[str, Any] = {"model": name, "class": type(model).__name__}
    heads_before, mlp_before, width_before = _heads(model), _mlp(model), embedding_width(model)
    t0 = time.perf_counter()
    if base in tiny.TIMM:
        x = tiny.image_input()
        result = spa_core.prune(model, x, ratio=ratio, criterion="l1")
        pruned, native = result.model, result.model
        row["config"] = "n/a (timm)"
    else:
        x = example_inputs(model)
        out = prune_transformer(model, x, ratio=ratio, criterion="l1", hidden=option == "hidden")
        result, pruned, native = out.result, out.model, ExportWrapper(out.model)
        why = [n for n in out.fit.notes[1:] if "parameter shapes are stored" not in n]
        row["config"] = "exact" if out.fit.exact else "load_pruned: " + "; ".join(why)
    row["seconds"] = f"{time.perf_counter() - t0:.1f}"
    rep = result.report
    row["params"] = f"{rep.params_before:,} -> {rep.params_after:,}"
    row["params_removed"] = f"{rep.params_reduction:.1%}"
    row["macs_removed"] = f"{rep.macs_reduction:.1%}"
    row["heads"] = f"{heads_before} -> {_heads(pruned)}"
    row["mlp"] = f"{mlp_before} -> {_mlp(pruned)}"
    row["hidden"] = "-" if width_before is None else f"{width_before} -> {embedding_width(pruned)}"
    err = oracle_error(result.analysis, result.removed, result.onnx)
    row["oracle"] = f"{'held' if err <= 1e-4 else 'FAILED'} ({err:.1e})"
    expected = list(run_model(result.onnx, {"input": x.numpy()}).values())
    with torch.no_grad():
        row["native"] = f"{relative_error(module_outputs(native, (x,)), expected):.1e}"
    if base not in tiny.TIMM:
        row["reload"] = reload_check(pruned, out.fit.exact, x)
    return row


def table(rows: list[dict[str, Any]], ratio: float) -> str:
    lines = [
        f"# Transformers coverage (ratio {ratio}, L1, tiny random-weight models: 2 layers, width 64, 4 heads)",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ensure_torchvision()
    import torch
    from spa_torch.hf import tiny

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    everything = [*tiny.TRANSFORMERS, *HIDDEN, *tiny.EXTRA, *tiny.TIMM]
    parser.add_argument("models", nargs="*", help=f"default: all of {', '.join(everything)}")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--markdown", type=Path, default=RESULTS / "coverage_transformers.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    for name in args.models or everything:
        try:
            rows.append(measure(name, args.ratio))
        except Exception as exc:  # a failure is a row of the table, with its reason
            rows.append({"model": name, "oracle": f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
        print(table(rows[-1:], args.ratio).splitlines()[-1], flush=True)
    text = table(rows, args.ratio)
    print("\n" + text)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text + "\n")
    return 0 if all(str(r.get("oracle", "")).startswith("held") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
