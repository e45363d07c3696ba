"""The train stage's pause point (see :mod:`mnist_mlops.core.pause`), as a Lightning callback.

    MNIST_PAUSE_AT=checkpoint:/tmp/paused python -m pipeline.train ...

holds training still, inside ``trainer.fit``, once its first checkpoint file is on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from mnist_mlops.core.pause import pause_here, pause_requested


class PauseAfterCheckpoint(Callback):
    """Pauses at the end of the first training epoch whose checkpoint file exists.

    Lightning ends an epoch after that epoch's validation, and so after the
    checkpoint the validation triggers has been written.
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        saver = trainer.checkpoint_callback
        saved = getattr(saver, "best_model_path", "") if saver is not None else ""
        if trainer.global_rank == 0 and saved and Path(saved).is_file():
            pause_here("checkpoint")


def pause_hooks() -> list[Callback]:
    """``[PauseAfterCheckpoint()]`` when $MNIST_PAUSE_AT asks for the checkpoint point, else []."""
    return [PauseAfterCheckpoint()] if pause_requested("checkpoint") else []
