"""OBSPA: structured pruning with no fine-tuning and, by default, no data.

Layer-wise Optimal Brain Surgeon over whole input-channel blocks of every consumer of a
channel group, with the OBS weight compensation (Frantar & Alistarh, *Optimal Brain
Compression*, 2022), from Hessians of the consumers' inputs. The inputs come from
calibration data when there is some, and are synthesised otherwise (inputs optimised until
every BatchNorm sees its running statistics, then propagated with those statistics frozen).

    from spa_core.obspa import prune_obspa
    result = prune_obspa("model.onnx", macs_target=0.5)   # data-free
    result = prune_obspa("model.onnx", ratio=0.3, calibration={"input": x})
"""

from typing import Any

__all__ = ["prune_obspa"]


def __getattr__(name: str) -> Any:
    """``prune_obspa`` is imported on first use: ``spa``'s parser imports this package's
    option modules and should not pay for onnx, onnxruntime and the engine."""
    if name == "prune_obspa":
        from .prune import prune_obspa

        return prune_obspa
    raise AttributeError(name)
