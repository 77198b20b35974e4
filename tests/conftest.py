import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))

# torchvision (installed for the model zoos) is a CUDA build that cannot load its extension
# with the CPU torch; the documented workaround lets timm, transformers and onnx2torch import.
from spa_torch.torchvision_compat import ensure_torchvision  # noqa: E402

ensure_torchvision()
