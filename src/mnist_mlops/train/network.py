"""The plain MLP (an ``nn.Module``): what is trained, checkpointed and exported.

The first layer normalises raw pixels (0..255) with the training-set mean/std stored as
buffers, so the checkpoint and the exported ONNX graph both take raw pixels and nothing
outside the model needs to know the stats. The Lightning wrapper lives in ``module.py``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mnist_mlops.core.config import Activation, Init, TrainConfig

N_PIXELS = 28 * 28
N_CLASSES = 10


class ActivationLayer(nn.Module):
    """The ``torch.nn.functional`` activation named by the config's ``Activation`` Literal.

    The Literal's names are the functional API's own, so that Literal is the one
    list of allowed activations; this layer has no parameters and exports to ONNX
    as the same op as the matching ``nn`` module.
    """

    def __init__(self, name: Activation) -> None:
        super().__init__()
        if name not in typing.get_args(Activation):
            raise ValueError(f"activation must be one of {typing.get_args(Activation)}: {name!r}")
        self.name = name
        self.fn: Callable[[torch.Tensor], torch.Tensor] = getattr(F, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


class PixelNormalise(nn.Module):
    """Raw pixels (any shape with 784 values per image) -> flat, standardised float32."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        # One multiply-add: (x / 255 - mean) / std == x * scale + shift.
        self.register_buffer("scale", torch.tensor(1.0 / (255.0 * std), dtype=torch.float32))
        self.register_buffer("shift", torch.tensor(-mean / std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reshape(-1, 784) accepts (N, 28, 28) and (N, 784) alike, also once exported.
        return x.reshape(-1, N_PIXELS).to(torch.float32) * self.scale + self.shift


class MLP(nn.Module):
    """784 -> hidden... -> 10 logits, with optional batch norm and dropout."""

    def __init__(
        self,
        hidden: Sequence[int],
        activation: Activation = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: Init = "default",
        mean: float = 0.1307,
        std: float = 0.3081,
    ) -> None:
        super().__init__()
        self.normalise = PixelNormalise(mean, std)
        layers: list[nn.Module] = []
        width = N_PIXELS
        for size in hidden:
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ActivationLayer(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, N_CLASSES))
        self.layers = nn.Sequential(*layers)
        self._init_weights(init, activation)

    @classmethod
    def from_config(cls, cfg: TrainConfig, mean: float, std: float) -> MLP:
        """The MLP ``cfg`` describes, normalising with the training split's ``mean``/``std``."""
        return cls(cfg.hidden, cfg.activation, cfg.dropout, cfg.batch_norm, cfg.init, mean, std)

    def _init_weights(self, init: str, activation: str) -> None:
        if init == "default":
            return  # PyTorch's own (Kaiming-uniform with a=sqrt(5))
        for module in self.layers:
            if isinstance(module, nn.Linear):
                if init == "he":
                    nonlin = "leaky_relu" if activation == "leaky_relu" else "relu"
                    nn.init.kaiming_normal_(module.weight, nonlinearity=nonlin)
                else:
                    gain = nn.init.calculate_gain(
                        activation if activation in ("tanh", "sigmoid") else "relu"
                    )
                    nn.init.xavier_uniform_(module.weight, gain=gain)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalise(x))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def is_finite_model(module: nn.Module) -> bool:
    """False if any parameter is NaN/Inf (a diverged run must not be exported)."""
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())
