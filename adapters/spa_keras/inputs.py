"""Static input shapes and example inputs of a Keras model for export and checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spa_core.errors import InvalidOptionError


def input_names(model: Any) -> list[str]:
    """The names of the model's inputs, which become the ONNX input names."""
    return [str(t.name).split(":")[0] for t in model.inputs]


def as_arrays(example_inputs: Any) -> list[Any]:
    """The example inputs as a list, one entry per model input."""
    if isinstance(example_inputs, Mapping):
        return list(example_inputs.values())
    if isinstance(example_inputs, list | tuple):
        return list(example_inputs)
    return [example_inputs]


def static_shapes(model: Any, example_inputs: Any, options: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Input name -> static shape, from example inputs, ``options["input_shapes"]`` or the model.

    A ``None`` batch dimension becomes 1; any other unknown dimension must be given.
    """
    if not getattr(model, "inputs", None):
        raise InvalidOptionError(
            "the Keras model has no defined inputs; build it (call it once or start it with keras.Input)"
        )
    names = input_names(model)
    given = options.get("input_shapes")
    if example_inputs is not None:
        arrays = as_arrays(example_inputs)
        if len(arrays) != len(names):
            raise InvalidOptionError(f"the model has {len(names)} inputs but {len(arrays)} example inputs were given")
        return {n: tuple(int(d) for d in np.shape(a)) for n, a in zip(names, arrays)}
    if given:
        shapes = given if isinstance(given, Mapping) else dict(zip(names, _shape_list(given, len(names))))
        missing = [n for n in names if n not in shapes]
        if missing:
            raise InvalidOptionError(f"input_shapes has no shape for input {missing[0]!r}")
        return {n: tuple(int(d) for d in shapes[n]) for n in names}
    shapes: dict[str, tuple[int, ...]] = {}
    for name, tensor in zip(names, model.inputs):
        dims = list(tensor.shape)
        if dims and dims[0] is None:
            dims[0] = 1
        if any(d is None for d in dims):
            raise InvalidOptionError(
                f"input {name!r} has unknown dimensions {tuple(tensor.shape)}; pass example inputs or input_shapes"
            )
        shapes[name] = tuple(int(d) for d in dims)
    return shapes


def _shape_list(given: Sequence[Any], count: int) -> list[Sequence[int]]:
    if count == 1 and given and isinstance(given[0], int):
        return [given]
    return list(given)


def random_inputs(model: Any, shapes: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs of the right dtype (integers in [0, 10) for integer inputs)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for tensor, (name, shape) in zip(model.inputs, shapes.items()):
        dtype = np.dtype(str(tensor.dtype))
        if dtype.kind in "iu":
            out[name] = rng.integers(0, 10, size=shape).astype(dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out
