"""The Keras adapter's SPA hooks (registered as the ``keras`` entry point).

Keras and TensorFlow are imported only when a hook needs them, so loading the plugin
costs nothing for users of other frameworks.
"""

from __future__ import annotations

import sys
from typing import Any

from spa_core.plugins import hookimpl

FRAMEWORK = "keras"


@hookimpl
def spa_detect_framework(model: Any) -> str | None:
    """``"keras"`` for any ``keras.Model`` (Functional, Sequential or subclassed)."""
    if "keras" not in sys.modules:
        return None
    import keras

    return FRAMEWORK if isinstance(model, keras.Model) else None


@hookimpl
def spa_export(model: Any, example_inputs: Any, framework: str, options: dict[str, Any]) -> Any:
    """tf2onnx export with every initializer mapped to its Keras weights (``opset``: 17)."""
    if framework != FRAMEWORK:
        return None
    from .export import export

    return export(model, example_inputs, options)


@hookimpl
def spa_apply_plan(model: Any, plan: Any, exported: Any, pruned_onnx: Any, options: dict[str, Any]) -> Any:
    """A new pruned Keras model (Keras layers cannot change width in place, so never in place)."""
    if exported.framework != FRAMEWORK:
        return None
    from .apply import apply_plan

    return apply_plan(model, plan, exported)


@hookimpl
def spa_load_model(path: str, framework: str | None, options: dict[str, Any]) -> Any:
    """``("keras", model)`` for ``.keras``/``.h5`` files."""
    from .saving import is_keras_file, load

    if framework not in (None, FRAMEWORK) or not is_keras_file(path):
        return None
    return FRAMEWORK, load(path, options)


@hookimpl
def spa_save_model(model: Any, path: str, framework: str, options: dict[str, Any]) -> bool | None:
    """Save as ``.keras`` atomically."""
    if framework != FRAMEWORK:
        return None
    from .saving import save

    save(model, path)
    return True


TORCH_TARGETS = ("torch", "pytorch")


@hookimpl
def spa_convert_onnx(pruned_onnx: Any, target: str, options: dict[str, Any]) -> Any:
    """``target="torch"``: the pruned ONNX model as a PyTorch module (onnx2torch).

    Works for a pruning of any source framework, since it only reads the pruned ONNX
    (``spa_core.prune(keras_model, x, target="torch")``, likewise for Flax or ONNX).
    """
    if target not in TORCH_TARGETS:
        return None
    from .cross import to_torch

    return to_torch(pruned_onnx)
