"""Re-export of :mod:`spa_torch.torchvision_compat` for the benchmark scripts.

``from torchvision_compat import ensure_torchvision`` keeps working from this folder;
the workaround itself lives in the torch adapter (see that module's docstring).
"""

from spa_torch.torchvision_compat import SCHEMAS, ensure_torchvision

__all__ = ["SCHEMAS", "ensure_torchvision"]
