"""Data that ships inside a package: Fashion-MNIST from Debian's ``dataset-fashion-mnist``.

Nothing is downloaded at run time. The idx files are read from
``/usr/share/datasets/fashion-mnist`` (or ``$SPA_FASHION_MNIST_DIR``); when missing,
the error names the one command that installs them.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from .errors import SpaError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "apt-get update && apt-get install -y dataset-fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetMissingError(SpaError):
    """The dataset's files are not on this machine."""


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("SPA_FASHION_MNIST_DIR", DEFAULT_DIR))


def load_fashion_mnist(split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 ``(N, 1, 28, 28)`` scaled to [0, 1] and int64 labels.

    :param split: ``"train"`` (60 000) or ``"test"`` (10 000).
    :param limit: keep only the first ``limit`` examples.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = fashion_mnist_dir()
    images_path = root / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_path.is_file() or not labels_path.is_file():
        raise DatasetMissingError(f"Fashion-MNIST not found in {root}; install it with: {INSTALL_HINT}")
    images = _read_idx(images_path)
    labels = _read_idx(labels_path)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return x, labels.astype(np.int64)
