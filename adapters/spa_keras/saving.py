"""Loading and atomically saving Keras model files (``.keras``, legacy ``.h5``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spa_core.errors import InvalidModelError, InvalidOptionError
from spa_core.io import atomic_path

SUFFIXES = (".keras", ".h5")


def is_keras_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def load(path: str | Path, options: Mapping[str, Any]) -> Any:
    """Load a Keras model file; ``options``: ``custom_objects``, ``compile``, ``safe_mode``."""
    import keras

    p = Path(path)
    if not p.is_file():
        raise InvalidModelError(f"Keras model file not found: {p}")
    try:
        return keras.saving.load_model(
            str(p),
            custom_objects=options.get("custom_objects"),
            compile=bool(options.get("compile", True)),
            safe_mode=bool(options.get("safe_mode", True)),
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidModelError(f"{p} is not a loadable Keras model ({type(exc).__name__}: {first})") from None


def save(model: Any, path: str | Path) -> None:
    """Save atomically: Keras writes a staging file beside ``path`` that is renamed into place."""
    dest = Path(path)
    if dest.suffix.lower() not in SUFFIXES:
        raise InvalidOptionError(f"Keras models are saved as .keras files, not {dest.name!r}")
    with atomic_path(dest) as tmp:
        staging = tmp.with_name(tmp.name + dest.suffix)
        try:
            model.save(str(staging))
            os.replace(staging, tmp)
        finally:
            if staging.exists():
                staging.unlink()
