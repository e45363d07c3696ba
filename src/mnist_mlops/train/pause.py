"""The train stage's pause point (see :mod:`mnist_mlops.core.pause`), as a Lightning callback.

    MNIST_PAUSE_AT=checkpoint:/tmp/paused python -m pipeline.train ...

holds training still, inside ``trainer.fit``, once its first checkpoint file is on disk
(at the start of epoch 2).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from mnist_mlops.core.pause import pause_here, pause_requested


class PauseAfterCheckpoint(Callback):
    """Pauses when a training epoch starts with a checkpoint file already on disk.

    Lightning's ModelCheckpoint saves at the end of an epoch, after every other
    callback's end-of-epoch hook, so the next epoch's start is the first moment that
    epoch's checkpoint is sure to be written (and training is not over yet).
    """

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        saver = trainer.checkpoint_callback
        saved = getattr(saver, "best_model_path", "") if saver is not None else ""
        if trainer.global_rank == 0 and saved and Path(saved).is_file():
            pause_here("checkpoint")


def pause_hooks() -> list[Callback]:
    """``[PauseAfterCheckpoint()]`` when $MNIST_PAUSE_AT asks for the checkpoint point, else []."""
    return [PauseAfterCheckpoint()] if pause_requested("checkpoint") else []
