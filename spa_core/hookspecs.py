"""SPA's plugin hooks.

SPA uses `pluggy <https://pluggy.readthedocs.io>`_, like pytest. A plugin is any module
or object with functions named after the hooks below and decorated with
``spa_core.hookimpl``. Plugins are found through the ``spa`` entry-point group; the
built-in criteria and framework adapters are registered exactly that way, so a
third-party package is a first-class citizen::

    # pyproject.toml of a third-party package
    [project.entry-points.spa]
    my_criterion = "my_package.spa_plugin"

    # my_package/spa_plugin.py
    import spa_core

    @spa_core.hookimpl
    def spa_register_criteria():
        return [MyCriterion()]

Hooks that answer for one model (``firstresult``) stop at the first plugin that
returns something other than ``None``; ``None`` means "not mine, ask the next plugin".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .criteria.base import Criterion
    from .plan import Plan
    from .rules.registry import OpRule
    from .types import ExportedModel

hookspec = pluggy.HookspecMarker("spa")


# ---------------------------------------------------------------- criteria and rules
@hookspec
def spa_register_criteria() -> list[Criterion]:
    """Return the importance criteria this plugin provides.

    Called once when the plugin manager is built. Each criterion has a unique ``name``
    (what ``--criterion`` takes); a later plugin may not reuse a name.

    :return: a list of :class:`spa_core.criteria.base.Criterion` instances (may be empty).
    """


@hookspec
def spa_register_rules() -> list[OpRule]:
    """Return mask-propagation rules for operators, typically a custom domain's.

    Each :class:`spa_core.rules.registry.OpRule` is keyed by
    ``(domain, op_type, since_version)``. A rule registered here for a key that a
    built-in rule already has replaces it.

    :return: a list of rules (may be empty).
    """


# ---------------------------------------------------------------- framework adapters
@hookspec(firstresult=True)
def spa_detect_framework(model: Any) -> str | None:
    """Say which framework ``model`` belongs to.

    :param model: any object the user passed to :func:`spa_core.prune`.
    :return: the framework name (``"torch"``, ``"keras"``, ``"flax"``...) or ``None``
        if this plugin does not recognise the object. ``firstresult``.
    """


@hookspec(firstresult=True)
def spa_export(
    model: Any, example_inputs: Any, framework: str, options: dict[str, Any]
) -> ExportedModel | None:
    """Export a native model to ONNX.

    :param model: the native model (never modified).
    :param example_inputs: inputs the exporter traces with; may be ``None`` when the
        adapter can build them from ``options["input_shapes"]`` or the model itself.
    :param framework: the name returned by :func:`spa_detect_framework`.
    :param options: adapter options (``opset``, ``input_shapes``...).
    :return: an :class:`spa_core.types.ExportedModel`, or ``None`` if ``framework`` is
        not this adapter's. ``firstresult``.
    """


@hookspec(firstresult=True)
def spa_apply_plan(
    model: Any, plan: Plan, exported: ExportedModel, pruned_onnx: Any, options: dict[str, Any]
) -> Any | None:
    """Apply a pruning plan to a native model and return the pruned native model.

    :param model: the native model the plan was made for.
    :param plan: the plan (its parameter entries name ONNX initializers).
    :param exported: what :func:`spa_export` returned for ``model``; its
        ``parameter_map`` links initializers to native parameters.
    :param pruned_onnx: the pruned ``onnx.ModelProto`` (for adapters that rebuild from it).
    :param options: ``{"inplace": bool, ...}``; a copy unless ``inplace`` is true.
    :return: the pruned native model, or ``None`` if ``exported.framework`` is not this
        adapter's. ``firstresult``.
    """


@hookspec(firstresult=True)
def spa_load_model(path: str, framework: str | None, options: dict[str, Any]) -> Any | None:
    """Load a native model file for the CLI (``model.pt``, ``model.keras``...).

    :return: ``(framework_name, model)`` or ``None`` if this plugin cannot read ``path``.
        ``firstresult``.
    """


@hookspec(firstresult=True)
def spa_save_model(model: Any, path: str, framework: str, options: dict[str, Any]) -> bool | None:
    """Save a pruned native model for the CLI, atomically.

    :return: ``True`` when saved, ``None`` if ``framework`` is not this plugin's.
        ``firstresult``.
    """


@hookspec(firstresult=True)
def spa_convert_onnx(pruned_onnx: Any, target: str, options: dict[str, Any]) -> Any | None:
    """Build a native model of framework ``target`` from a (pruned) ONNX model.

    Used for cross-framework pruning (``prune(keras_model, target="torch")``).

    :return: the native model, or ``None`` if this plugin cannot build ``target``.
        ``firstresult``.
    """
