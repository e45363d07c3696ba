"""The LightningModule that trains an :class:`~mnist_mlops.train.network.MLP`.

Kept apart from the network so the exported graph and checkpoint loading need no Lightning.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from mnist_mlops.core.config import TrainConfig
from mnist_mlops.train.augment import random_affine, random_shift, random_stroke
from mnist_mlops.train.network import MLP, N_CLASSES
from mnist_mlops.train.optim import make_optimizer, make_scheduler


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

    def configure_optimizers(self):  # noqa: D102
        cfg = self.cfg
        opt = make_optimizer(
            cfg.optimizer,
            self.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            fused=self.device.type in ("cuda", "cpu"),
        )
        # Only a schedule needs the step count (the Trainer builds the train loader to count).
        total = int(self.trainer.estimated_stepping_batches) if cfg.schedule != "none" else 0
        sched = make_scheduler(cfg.schedule, opt, lr=cfg.lr, total_steps=total)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
