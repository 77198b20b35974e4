"""Pruning targets: a channel ratio, a MACs budget or a parameter budget.

``ratio`` is what the engine takes (the fraction of each group's channels removed, or
of all channels with global ranking). A budget (``macs`` or ``params``) is the most the
pruned model may have — an absolute count (``"3.5M"``, ``2e8``) or, when at most 1, a
fraction of the original (``"macs=0.5"``: half the MACs; ``"params=10%"``). A budget is
met by bisection on the ratio with the channel scores fixed: the smallest ratio whose
pruned model fits is used, i.e. the largest model within the budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidOptionError
from .session import Counts, PruningSession

MAX_RATIO = 0.999
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_NUMBER = re.compile(r"^\s*([0-9.]+(?:e[+-]?[0-9]+)?)\s*([kmgb%]?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """What to prune to.

    Attributes:
        kind: ``"ratio"``, ``"macs"`` or ``"params"``.
        value: the ratio in [0, 1); or the budget: a count (> 1) or a fraction of the
            original model's (<= 1).
    """

    kind: str
    value: float

    def budget(self, original: int) -> float:
        """The budget as an absolute count, given the original model's count."""
        return self.value * original if self.value <= 1.0 else self.value

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


# kind -> which count a budget limits (ratio has none)
MEASURES: dict[str, Callable[[Counts], int]] = {
    "macs": lambda c: c.macs,
    "params": lambda c: c.params,
}
KINDS = ("ratio", *MEASURES)


def parse_number(text: str) -> float:
    """``"0.5"``, ``"50%"``, ``"3.5M"``, ``"2e8"`` -> a float (percentages as fractions)."""
    match = _NUMBER.match(text)
    if match is None:
        raise InvalidOptionError(f"bad number '{text}': use e.g. 0.5, 50%, 3.5M or 2e8")
    value, suffix = float(match.group(1)), match.group(2).lower()
    return value / 100.0 if suffix == "%" else value * _SUFFIX[suffix]


def as_target(value: Target | float | str) -> Target:
    """A :class:`Target` from a ratio (a float), ``"KIND=VALUE"`` text, or a Target."""
    if isinstance(value, Target):
        target = value
    elif isinstance(value, int | float):
        target = Target("ratio", float(value))
    else:
        kind, sep, number = str(value).partition("=")
        kind, number = (kind.strip().lower(), number) if sep else ("ratio", kind)
        if kind not in KINDS:
            raise InvalidOptionError(f"unknown target '{kind}'; use one of {', '.join(KINDS)} (e.g. macs=50%)")
        target = Target(kind, parse_number(number))
    if target.kind not in KINDS:
        raise InvalidOptionError(f"unknown target '{target.kind}'; use one of {', '.join(KINDS)}")
    if target.kind == "ratio" and not 0.0 <= target.value < 1.0:
        raise InvalidOptionError(f"a ratio target must be in [0, 1), got {target.value:g}")
    if target.kind != "ratio" and target.value <= 0:
        raise InvalidOptionError(f"a {target.kind} budget must be positive, got {target.value:g}")
    return target


def solve_ratio(session: PruningSession, target: Target, iterations: int = 18) -> float:
    """The ratio that meets ``target`` on ``session``'s model.

    :raises InvalidOptionError: when even the largest ratio cannot meet the budget.
    """
    if target.kind == "ratio":
        return target.value
    measure = MEASURES[target.kind]
    original = session.original[0 if target.kind == "params" else 1]
    budget = target.budget(original)
    if original <= budget:
        return 0.0
    high = MAX_RATIO
    floor = measure(session.counts(high))
    if floor > budget:
        raise InvalidOptionError(
            f"the {target.kind} budget {budget:,.0f} cannot be met: pruning leaves at least {floor:,} "
            f"(of {original:,}); barriers and min_keep bound how far this model can be pruned"
        )
    low = 0.0
    for _ in range(iterations):
        mid = (low + high) / 2
        if measure(session.counts(mid)) <= budget:
            high = mid
        else:
            low = mid
    return high
