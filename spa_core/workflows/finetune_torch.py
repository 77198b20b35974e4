"""The built-in fine-tuning loop for PyTorch modules (Adam, train mode, then eval mode)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..gradients.torch_common import to_tensor, torch_loss
from .finetune import TrainConfig, epochs_of, split_batch


def train(model: torch.nn.Module, data: Iterable[Any], config: TrainConfig) -> torch.nn.Module:
    """Train ``model`` in place and return it in eval mode."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = torch_loss(config.loss)
    device = params[0].device if params else torch.device("cpu")
    model.train()
    for batch in epochs_of(data, config):
        inputs, targets = split_batch(batch)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(*(to_tensor(x, device) for x in inputs)), to_tensor(targets, device))
        loss.backward()
        opt.step()
    return model.eval()
