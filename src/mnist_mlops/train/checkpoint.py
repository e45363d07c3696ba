"""Read a training checkpoint back into the plain MLP, for the evaluate and export stages.

Apart from the training loop on purpose: reading a checkpoint needs only torch, the
config and the MLP, so evaluate and export do not import (or depend on) the loop.
"""

from __future__ import annotations

import os

import torch

from mnist_mlops.core.config import TrainConfig
from mnist_mlops.core.errors import UserError
from mnist_mlops.train.network import MLP


def load_net(checkpoint: str | os.PathLike[str]) -> torch.nn.Module:
    """Rebuild the plain MLP from a Lightning checkpoint (weights only, no pickle)."""
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{checkpoint}: not found; run the train stage first") from None
    except Exception as exc:  # torch raises many types for a corrupt file
        raise UserError(
            f"{checkpoint}: unreadable checkpoint ({type(exc).__name__}); rerun train"
        ) from None
    try:
        hp = ckpt["hyper_parameters"]
        cfg = TrainConfig.model_validate(hp["cfg"])
        net = MLP.from_config(cfg, hp["mean"], hp["std"])
        state = {
            k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")
        }
        net.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        # Loadable, but not this project's Lightning checkpoint (or another model's).
        raise UserError(
            f"{checkpoint}: not a checkpoint of this project's MLP "
            f"({type(exc).__name__}: {str(exc)[:80]}); rerun the train stage"
        ) from None
    return net.eval()
