"""The built-in fine-tuning loop for Keras models (Adam via ``compile`` + ``train_on_batch``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from ..gradients.calibration import to_numpy
from ..gradients.keras_provider import LOSSES
from .finetune import TrainConfig, epochs_of, split_batch


def train(model: keras.Model, data: Iterable[Any], config: TrainConfig) -> keras.Model:
    """Train ``model`` in place (it is re-compiled with Adam and the loss) and return it."""
    loss = config.loss if callable(config.loss) else LOSSES[config.loss]
    optimizer = (keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay) if config.weight_decay
                 else keras.optimizers.Adam(config.lr))
    model.compile(optimizer=optimizer, loss=lambda y, out: loss(out, y))
    for batch in epochs_of(data, config):
        inputs, targets = split_batch(batch)
        x = [np.asarray(to_numpy(v)) for v in inputs]
        model.train_on_batch(x[0] if len(x) == 1 else x, np.asarray(to_numpy(targets)))
    return model
