"""The pruning plan: the portable, auditable record of one pruning.

A plan says, for each channel group, which root channels were kept, and for each
ONNX initializer, which indices were kept along each pruned axis. Re-applying a plan
to the same unpruned model reproduces the pruning exactly, in ONNX or in any framework
whose adapter maps initializers to native parameters.

JSON layout (``spa_plan_version`` 1)::

    {
      "spa_plan_version": 1,
      "options": {"ratio": 0.5, "criterion": "l1", ...},
      "groups": [
        {"id": 0, "size": 64, "kept": [0, 2, 5, ...],
         "members": ["conv1.weight:0", "bn1.weight:0", "layer1.0.conv1.weight:1"],
         "scores": [0.9, 0.1, ...]}
      ],
      "parameters": {
        "conv1.weight": {"shape": [64, 3, 7, 7], "kept": {"0": [0, 2, 5, ...]}}
      },
      "attributes": [{"node": "/features/conv/Conv", "name": "group", "value": 24}]
    }
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidModelError

PLAN_VERSION = 1


@dataclass
class GroupPlan:
    """The decision for one channel group.

    ``members`` lists the parameter axes of the group as ``"initializer:axis"``.
    ``kept`` are root channel indices (0 .. size-1) that survive.
    """

    id: int
    size: int
    kept: list[int]
    members: list[str] = field(default_factory=list)
    scores: list[float] | None = None

    @property
    def removed(self) -> list[int]:
        kept = set(self.kept)
        return [i for i in range(self.size) if i not in kept]


@dataclass
class ParameterPlan:
    """Kept indices of one ONNX initializer along each pruned axis."""

    shape: list[int]
    kept: dict[int, list[int]]

    @property
    def new_shape(self) -> list[int]:
        return [len(self.kept[a]) if a in self.kept else d for a, d in enumerate(self.shape)]


@dataclass
class AttributePlan:
    """A node attribute the surgery rewrote (Conv ``group``, LSTM ``hidden_size`` ...)."""

    node: str
    name: str
    value: Any


@dataclass
class Plan:
    """Which channels of which parameter were kept."""

    groups: list[GroupPlan] = field(default_factory=list)
    parameters: dict[str, ParameterPlan] = field(default_factory=dict)
    attributes: list[AttributePlan] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def removed_channels(self) -> int:
        return sum(g.size - len(g.kept) for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spa_plan_version": PLAN_VERSION,
            "options": self.options,
            "groups": [
                {
                    "id": g.id,
                    "size": g.size,
                    "kept": list(g.kept),
                    "members": list(g.members),
                    **({"scores": list(g.scores)} if g.scores is not None else {}),
                }
                for g in self.groups
            ],
            "parameters": {
                name: {"shape": list(p.shape), "kept": {str(a): list(k) for a, k in p.kept.items()}}
                for name, p in self.parameters.items()
            },
            "attributes": [{"node": a.node, "name": a.name, "value": a.value} for a in self.attributes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("spa_plan_version") != PLAN_VERSION:
            raise InvalidModelError(
                f"not an SPA plan of version {PLAN_VERSION} (spa_plan_version="
                f"{data.get('spa_plan_version')!r})"
            )
        return cls(
            groups=[
                GroupPlan(
                    id=int(g["id"]),
                    size=int(g["size"]),
                    kept=[int(i) for i in g["kept"]],
                    members=list(g.get("members", [])),
                    scores=g.get("scores"),
                )
                for g in data.get("groups", [])
            ],
            parameters={
                name: ParameterPlan(
                    shape=[int(d) for d in p["shape"]],
                    kept={int(a): [int(i) for i in k] for a, k in p["kept"].items()},
                )
                for name, p in data.get("parameters", {}).items()
            },
            attributes=[AttributePlan(a["node"], a["name"], a["value"]) for a in data.get("attributes", [])],
            options=dict(data.get("options", {})),
        )

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidModelError(f"plan is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        from .io import atomic_write_text

        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        p = Path(path)
        if not p.is_file():
            raise InvalidModelError(f"plan file not found: {p}")
        return cls.from_json(p.read_text())
