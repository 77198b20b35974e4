"""The registry of mask-propagation rules, keyed by ``(domain, op_type, since_version)``.

A rule is a function ``rule(ctx: RuleContext) -> None`` that tells the engine how the
axes of a node's inputs and outputs are tied (see :mod:`spa_core.rules.context`). For a
model whose opset for the domain is V, the rule with the largest ``since_version <= V``
is used, exactly like ONNX's own operator versioning.

Built-in rules register themselves with :func:`rule` at import of their family module;
third parties return :class:`OpRule` objects from the ``spa_register_rules`` hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import RuleContext

RuleFn = Callable[["RuleContext"], None]


@dataclass(frozen=True)
class OpRule:
    """A propagation rule for one operator from one opset version on."""

    domain: str
    op_type: str
    since_version: int
    fn: RuleFn


class RuleRegistry:
    """Rules by (domain, op_type), each a list sorted by ``since_version``."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str], list[OpRule]] = {}

    def add(self, rule: OpRule) -> None:
        key = (_norm_domain(rule.domain), rule.op_type)
        versions = [r for r in self._rules.get(key, []) if r.since_version != rule.since_version]
        versions.append(rule)
        versions.sort(key=lambda r: r.since_version)
        self._rules[key] = versions

    def lookup(self, domain: str, op_type: str, opset_version: int) -> OpRule | None:
        candidates = self._rules.get((_norm_domain(domain), op_type), [])
        best = None
        for r in candidates:
            if r.since_version <= opset_version:
                best = r
        return best

    def op_types(self) -> list[tuple[str, str]]:
        return sorted(self._rules)


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


BUILTIN = RuleRegistry()


def rule(op_types: str | Iterable[str], since_version: int = 1, domain: str = "") -> Callable[[RuleFn], RuleFn]:
    """Decorator registering ``fn`` as the built-in rule of one or several operators."""
    names = [op_types] if isinstance(op_types, str) else list(op_types)

    def register(fn: RuleFn) -> RuleFn:
        for name in names:
            BUILTIN.add(OpRule(domain, name, since_version, fn))
        return fn

    return register


def load_builtin_rules() -> RuleRegistry:
    """Import every rule family module (each registers its rules) and return the registry."""
    from . import (  # noqa: F401  (imported for their registrations)
        conv,
        einsum,
        elementwise,
        linear,
        normalization,
        pooling,
        recurrent,
        reshape,
        routing,
        spatial,
    )

    return BUILTIN


def full_registry() -> RuleRegistry:
    """Built-in rules plus those of installed plugins (plugins win on equal keys)."""
    from ..plugins import plugin_manager

    registry = RuleRegistry()
    for key_rules in load_builtin_rules()._rules.values():
        for r in key_rules:
            registry.add(r)
    for rules in plugin_manager().hook.spa_register_rules():
        for r in rules or []:
            registry.add(r)
    return registry
