"""Loading and saving PyTorch models for the CLI, safely.

Unpickling a whole module runs arbitrary code, so ``spa prune model.pt`` refuses a
pickle unless ``--trust-pickle`` is given. TorchScript archives are loaded without
unpickling code, but their compiled graphs cannot be re-shaped: prune the module they
were scripted from, or its ONNX export.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from spa_core.errors import FrameworkError, InvalidModelError
from spa_core.io import atomic_path


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def load_module(path: str, trust_pickle: bool = False) -> torch.nn.Module:
    p = Path(path)
    if not p.is_file():
        raise InvalidModelError(f"model file not found: {p}")
    if _is_torchscript(p):
        raise FrameworkError(
            f"{p} is a TorchScript archive; its compiled graph cannot be re-shaped. Prune the nn.Module it was "
            "scripted from (Python API), or export it to ONNX and prune that"
        )
    if not trust_pickle:
        raise FrameworkError(
            f"{p} is a pickled module; loading it runs code from the file. Pass --trust-pickle if you trust it, "
            "or use the Python API with a state_dict and your model class"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as exc:
        raise FrameworkError(
            f"{p} needs the module that defines its classes: {exc} (add it to PYTHONPATH)"
        ) from None
    except Exception as exc:
        raise InvalidModelError(f"{p} is not a readable PyTorch file ({type(exc).__name__})") from None
    if not isinstance(obj, torch.nn.Module):
        raise InvalidModelError(
            f"{p} holds a {type(obj).__name__}, not an nn.Module (a state_dict needs your model class: use the Python API)"
        )
    return obj


def save_module(module: torch.nn.Module, path: str) -> None:
    with atomic_path(path) as tmp:
        torch.save(module, tmp)
