"""Export an MXNet symbol + parameters to ONNX (MXNet's environment only).

Uses ``mx.onnx.export_model``, which keeps BatchNorm unfolded and names every ONNX
initializer after its gluon parameter (``resnet0_conv0_weight``). Two things are
corrected on the way out:

* the declared opset: MXNet 1.9.1 translates with its opset-13 tables but stamps the
  model with the installed onnx package's newest opset (19 for onnx 1.14), which would
  misdeclare ops whose signature changed after 13. The model is stamped with the
  newest opset MXNet actually has translations for.
* ``BatchNorm(fix_gamma=True)`` ignores its gamma parameter in MXNet, while the ONNX
  translation uses it: gamma is exported as ones (native values kept untouched).

Everything else (dropping initializers from the graph inputs, node names) is tidied in
the main environment with the current onnx package.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx
import numpy as np
import onnx

from .mx_common import WorkerError, bare, input_shapes, load_params, load_symbol

# Per MXNet op: the parameter inputs the exporter must see changed, and how.
# Value: (input index, attribute that triggers it, transform name, function).
EXPORT_FIXUPS: dict[str, list[tuple[int, str, str, Any]]] = {
    "BatchNorm": [(1, "fix_gamma", "fix_gamma", np.ones_like)],
}
_TRUE = {"true", "1"}


def translation_opset() -> int:
    """Newest opset for which this MXNet has operator translations (13 for 1.9.1)."""
    import mxnet.onnx  # noqa: F401  (registers the translation tables)
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

    return max(MXNetGraph.registry_)


def _fixups(sym: mx.sym.Symbol, params: dict[str, np.ndarray]) -> dict[str, str]:
    """Apply EXPORT_FIXUPS to ``params`` in place; return {param name: transform}."""
    import json

    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    done: dict[str, str] = {}
    for node in nodes:
        default_on = node["op"] == "BatchNorm"  # MXNet's BatchNorm defaults fix_gamma=True
        for index, attr, transform, fn in EXPORT_FIXUPS.get(node["op"], []):
            flag = node.get("attrs", node.get("attr", {})).get(attr)
            active = flag.lower() in _TRUE if flag is not None else default_on
            if not active or index >= len(node["inputs"]):
                continue
            name = nodes[node["inputs"][index][0]]["name"]
            if name in params:
                params[name] = fn(params[name])
                done[name] = transform
    return done


def export(job: dict[str, Any]) -> dict[str, Any]:
    """Write ``job["onnx"]`` and ``job["npz"]`` (native parameter values).

    Job keys: ``symbol``, ``params``, ``input_shapes`` (by name, list or one shape),
    ``onnx``, ``npz``. Returns the data input shapes by name, each parameter's shape
    and kind, the fixups applied and the opset stamped.
    """
    sym = load_symbol(job["symbol"])
    raw = load_params(job["params"])
    shapes = input_shapes(sym, raw, job.get("input_shapes"))
    native = {bare(k): v.asnumpy() for k, v in raw.items()}
    used = set(sym.list_inputs())
    native = {k: v for k, v in native.items() if k in used}
    np.savez(job["npz"], **native)

    exported = dict(native)
    fixups = _fixups(sym, exported)
    mx_params = {k: mx.nd.array(v, dtype=v.dtype) for k, v in exported.items()}
    names = list(shapes)
    try:
        mx.onnx.export_model(
            sym,
            mx_params,
            in_shapes=[tuple(shapes[n]) for n in names],
            in_types=[np.float32] * len(names),
            onnx_file_path=job["onnx"],
        )
    except (NotImplementedError, AttributeError, KeyError, AssertionError) as exc:
        raise WorkerError(f"mx.onnx.export_model cannot export this symbol: {exc}") from None

    model = onnx.load(job["onnx"])
    opset = translation_opset()
    del model.opset_import[:]
    model.opset_import.append(onnx.helper.make_opsetid("", opset))
    onnx.save(model, job["onnx"])
    kinds = {bare(k): ("aux" if k.startswith("aux:") else "arg") for k in raw}
    return {
        "input_shapes": shapes,
        "params": {k: {"shape": list(v.shape), "kind": kinds[k]} for k, v in native.items()},
        "fixups": fixups,
        "opset": opset,
        "outputs": list(sym.list_outputs()),
    }
