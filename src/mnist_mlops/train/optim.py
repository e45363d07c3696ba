"""The optimizer and learning-rate schedule a config names, built in one place.

The LightningModule trains with them and the speed benchmark's plain loop times them, so
both run the same maths: a benchmark that wrote its own optimizer could drift from what
the train stage does and still report a speed-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from mnist_mlops.core.config import Optimizer, Schedule

# The cosine schedule ends at this share of the peak learning rate, not at zero.
COSINE_FLOOR = 1e-2


Params = Iterable[nn.Parameter]
# params, lr, momentum, weight_decay, and {"fused": True} or {}
Builder = Callable[[Params, float, float, float, dict[str, bool]], torch.optim.Optimizer]

# How each config name builds its optimizer (keys: the config's ``Optimizer`` Literal;
# tests check they match). RMSprop has no fused kernel.
OPTIMIZERS: dict[Optimizer, Builder] = {
    "sgd": lambda p, lr, m, wd, f: torch.optim.SGD(p, lr=lr, weight_decay=wd, **f),
    "sgd_momentum": lambda p, lr, m, wd, f: torch.optim.SGD(
        p, lr=lr, momentum=m, nesterov=True, weight_decay=wd, **f
    ),
    "adam": lambda p, lr, m, wd, f: torch.optim.Adam(p, lr=lr, weight_decay=wd, **f),
    "adamw": lambda p, lr, m, wd, f: torch.optim.AdamW(p, lr=lr, weight_decay=wd, **f),
    "rmsprop": lambda p, lr, m, wd, f: torch.optim.RMSprop(p, lr=lr, momentum=m, weight_decay=wd),
}


def make_optimizer(
    name: Optimizer,
    params: Params,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params``; ``momentum`` is read by sgd_momentum and
    rmsprop only. ``fused``: one kernel per step for all parameters instead of one or more
    per parameter, where torch has one for this optimizer and device."""
    return OPTIMIZERS[name](params, lr, momentum, weight_decay, {"fused": True} if fused else {})


def make_scheduler(
    name: Schedule, optimizer: torch.optim.Optimizer, *, lr: float, total_steps: int
) -> LRScheduler | None:
    """The per-step schedule ``name`` peaking at ``lr`` over ``total_steps``; None for "none"."""
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(total_steps, 1), eta_min=lr * COSINE_FLOOR
        )
    return None
