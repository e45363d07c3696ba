"""The MLP (a plain ``nn.Module``) and its Lightning training wrapper.

The MLP's first layer normalises raw pixels (0..255) with the training-set
mean/std stored as buffers, so the checkpoint and the exported ONNX graph both
take raw pixels and nothing outside the model needs to know the stats.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from mnist_mlops.core.config import Activation, Init, Optimizer, TrainConfig
from mnist_mlops.train.augment import random_affine, random_shift, random_stroke

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


class LitMLP(pl.LightningModule):
    """Trains an :class:`MLP`; one ``_step`` serves train, val and test."""

    def __init__(self, cfg: TrainConfig, mean: float, std: float) -> None:
        super().__init__()
        self.cfg = cfg
        # Plain types only, so the checkpoint loads with torch.load(weights_only=True).
        # logger=False: train() logs each parameter once under its flat name; Lightning
        # would log them again as cfg/<name>.
        self.save_hyperparameters(
            {"cfg": cfg.model_dump(mode="json"), "mean": float(mean), "std": float(std)},
            logger=False,
        )
        self.net = MLP.from_config(cfg, mean, std)
        # Kept out of the module tree so state_dict keys stay "net.*" with or without compile.
        self.__dict__["_run"] = torch.compile(self.net) if cfg.compile else self.net
        # validate_args=False: the argument checks read values back to the host (a sync).
        self.acc = nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(N_CLASSES, average="micro", validate_args=False)
                for s in ("val", "test")
            }
        )
        # Training loss/accuracy are running sums on the device, logged once per epoch:
        # on a GPU a self.log call and a torchmetrics update per step cost more than
        # the step of an MLP this small. Not in the state_dict (persistent=False).
        self.register_buffer("_train_sums", torch.zeros(2), persistent=False)
        self._train_count = 0  # on the host: adding a Python int needs no kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        if stage == "train":
            x = self.augment(x)
        logits = self(x)
        smoothing = self.cfg.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        if stage == "train":
            with torch.no_grad():  # loss sum and correct count: no host sync
                self._train_sums[0] += loss.detach() * len(y)
                self._train_sums[1] += (logits.argmax(1) == y).sum()
            self._train_count += len(y)
            return loss
        acc = self.acc[f"{stage}_acc"]
        acc.update(logits, y)
        # on_step=False: Lightning reduces once per epoch (across processes too under
        # DDP; sync_dist only acts at that epoch-end reduction, never per step).
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=True,
        )
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_sums.zero_()
        self._train_count = 0

    def on_train_epoch_end(self) -> None:
        loss_sum, correct = self._train_sums
        count = max(self._train_count, 1)
        # Every rank has the same number of items (the DataModule pads the shards), so
        # the mean of the per-rank means is the global mean.
        self.log("train/loss", loss_sum / count, sync_dist=True)
        self.log("train/acc", correct / count, sync_dist=True)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Stroke width/blur, random affine (+ elastic), random shift, on the batch's device.

        Each is off at 0; all off (the default) is the identity.
        """
        cfg = self.cfg
        if cfg.augment_stroke > 0 or cfg.augment_blur > 0:
            x = random_stroke(x, cfg.augment_stroke, cfg.augment_blur)
        if cfg.augment_degrees > 0 or cfg.augment_scale > 0 or cfg.augment_elastic > 0:
            x = random_affine(x, cfg.augment_degrees, cfg.augment_scale, cfg.augment_elastic)
        if cfg.augment_shift > 0:
            x = random_shift(x, cfg.augment_shift)
        return x

    def training_step(self, batch, batch_idx):  # noqa: D102
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):  # noqa: D102
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):  # noqa: D102
        self._step(batch, "test")

    def predict_step(self, batch, batch_idx):  # noqa: D102
        return self(batch[0])

    def configure_optimizers(self):  # noqa: D102
        cfg = self.cfg
        # One fused kernel per step instead of one or more per parameter (CPU and CUDA).
        fused = self.device.type in ("cuda", "cpu")
        opt = OPTIMIZERS[cfg.optimizer](self.parameters(), cfg, fused)
        if cfg.schedule == "none":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if cfg.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=max(total, 1), eta_min=cfg.lr * 1e-2
            )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


Params = Iterator[nn.Parameter]


def _fused(fused: bool) -> dict[str, bool]:
    return {"fused": True} if fused else {}


# How each config name builds its optimizer (keys: the config's ``Optimizer`` Literal;
# tests check they match). RMSprop has no fused kernel.
OPTIMIZERS: dict[Optimizer, Callable[[Params, TrainConfig, bool], torch.optim.Optimizer]] = {
    "sgd": lambda p, c, f: torch.optim.SGD(p, lr=c.lr, weight_decay=c.weight_decay, **_fused(f)),
    "sgd_momentum": lambda p, c, f: torch.optim.SGD(
        p, lr=c.lr, momentum=c.momentum, nesterov=True, weight_decay=c.weight_decay, **_fused(f)
    ),
    "adam": lambda p, c, f: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay, **_fused(f)),
    "adamw": lambda p, c, f: torch.optim.AdamW(
        p, lr=c.lr, weight_decay=c.weight_decay, **_fused(f)
    ),
    "rmsprop": lambda p, c, f: torch.optim.RMSprop(
        p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
    ),
}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def is_finite_model(module: nn.Module) -> bool:
    """False if any parameter is NaN/Inf (a diverged run must not be exported)."""
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())
