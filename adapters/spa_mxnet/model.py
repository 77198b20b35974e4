"""The MXNet model descriptor and file-name conventions (plain Python, both environments).

MXNet's own environment cannot share a process with the main one (numpy < 1.24 and
onnx < 1.19 against numpy 2 / onnx 1.23), so the main environment never holds an MXNet
object: an MXNet model is described by its files, the way ``HybridBlock.export`` writes
them (``PREFIX-symbol.json`` + ``PREFIX-0000.params``), and the static input shapes the
ONNX export needs (an MXNet symbol does not record them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SYMBOL_SUFFIX = "-symbol.json"
PARAMS_SUFFIX = "-0000.params"

# One shape per data input, by name ({"data": (1, 3, 32, 32)}) or in the symbol's input order.
InputShapes = Mapping[str, Sequence[int]] | Sequence[Sequence[int]] | Sequence[int]


@dataclass(frozen=True)
class MXNetModel:
    """An MXNet model on disk: symbol JSON, parameter file and static input shapes.

    Attributes:
        symbol_path: ``PREFIX-symbol.json`` written by ``HybridBlock.export``.
        params_path: ``PREFIX-0000.params`` (``arg:``/``aux:`` prefixed or plain names).
        input_shapes: static shape of each data input, by name or in input order;
            a single shape (``(1, 3, 32, 32)``) means the only data input.
    """

    symbol_path: str
    params_path: str
    input_shapes: InputShapes | None = field(default=None, compare=False)

    @classmethod
    def from_prefix(cls, prefix: str | Path, input_shapes: InputShapes | None = None) -> MXNetModel:
        """The model that ``HybridBlock.export(prefix)`` wrote."""
        return cls(str(prefix) + SYMBOL_SUFFIX, str(prefix) + PARAMS_SUFFIX, input_shapes)


def prefix_of(path: str | Path) -> str:
    """Strip ``-symbol.json``, ``-0000.params``, ``.json`` or ``.params`` from a file name."""
    text = str(path)
    for suffix in (SYMBOL_SUFFIX, PARAMS_SUFFIX, ".json", ".params"):
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def normalise_shapes(shapes: InputShapes | None, names: Sequence[str]) -> dict[str, list[int]]:
    """Shapes by input name, given by name, as a list in ``names`` order, or as one shape.

    Raises ``ValueError`` with one sentence when a data input has no shape.
    """
    if shapes is None:
        shapes = {}
    if isinstance(shapes, Mapping):
        by_name = {str(k): [int(d) for d in v] for k, v in shapes.items()}
    elif len(shapes) > 0 and all(isinstance(d, int) for d in shapes):
        by_name = {names[0]: [int(d) for d in shapes]} if names else {}  # type: ignore[arg-type]
    else:
        by_name = {n: [int(d) for d in s] for n, s in zip(names, shapes)}  # type: ignore[union-attr]
    unknown = [n for n in by_name if n not in names]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a data input of the MXNet symbol (inputs: {list(names)})")
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"MXNet input {missing[0]!r} needs a static shape (pass input_shapes, e.g. "
            f"{{'{missing[0]}': (1, 3, 224, 224)}} or --input-shape 1,3,224,224)"
        )
    return by_name
