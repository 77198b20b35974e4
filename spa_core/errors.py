"""Errors a user can act on.

Every failure that is the user's to fix (a bad file, a bad option, an unsupported
model) is raised as a :class:`SpaError` subclass with one clear sentence naming the
thing at fault. The CLI prints that sentence and exits non-zero; it never shows a
traceback for these.
"""

from __future__ import annotations


class SpaError(Exception):
    """Base class of every error SPA raises on purpose."""


class InvalidModelError(SpaError):
    """The model file or object cannot be read or is not a valid model."""


class InvalidOptionError(SpaError):
    """An option is out of range or unknown (ratio, criterion, input shape, ...)."""


class UnprunableModelError(SpaError):
    """Analysis found no prunable channel group (everything is behind a barrier)."""


class FrameworkError(SpaError):
    """A framework adapter cannot handle this model (missing framework, subclassed model, ...)."""


class HardcodedWidthError(FrameworkError):
    """The pruned native model does not run: a layer's forward() hard-codes a pruned width.

    ``parameters`` names the ONNX initializers of the layers at fault, ``nodes`` the ONNX
    nodes they were exported to; :func:`spa_core.prune` prunes again with the parameters
    ignored, then, if that was not enough, the nodes (which blocks the layers' inputs and
    outputs too); what was left out is in ``result.extras["auto_ignored"]``.
    """

    def __init__(self, message: str, parameters: list[str], where: str, nodes: list[str] | None = None) -> None:
        super().__init__(message)
        self.parameters = parameters
        self.where = where
        self.nodes = nodes or []
