"""Run by test_ddp.py in a real subprocess: ``train`` under Lightning DDP, 2 CPU processes.

    python tests/train/ddp_train.py PROCESSED_DIR OUT_DIR

Lightning's ``ddp`` strategy starts the second process by re-running this
script, so it must be a file, not a function. Each rank writes
``rank<N>.json`` with what it trained on in epoch 1 (a hash per image), so the
test can check the shards are disjoint.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from mnist_mlops.core.config import MlflowConfig, TrainConfig, load_params
from mnist_mlops.train.training import Tracking, TrainInputs, train


class RecordFirstEpoch(Callback):
    """Hashes of the images this process trained on in the first epoch."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if trainer.current_epoch == 0:
            images = batch[0].reshape(len(batch[0]), -1).cpu().numpy()  # type: ignore[index]
            self.seen += [hashlib.sha1(row.tobytes()).hexdigest() for row in images]


def main() -> None:
    processed, out = sys.argv[1], Path(sys.argv[2])
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    cfg = TrainConfig.from_params(
        params,
        hidden=(32,),
        max_epochs=2,
        batch_size=32,
        lr=3e-3,
        seed=0,
        accelerator="cpu",
        devices="2",
        strategy="ddp",
    )
    record = RecordFirstEpoch()
    result = train(
        cfg,
        TrainInputs(processed),
        out / "model.ckpt",
        Tracking(
            MlflowConfig.from_params(
                params, tracking_uri=f"sqlite:///{out}/mlflow.db", experiment="ddp"
            )
        ),
        callbacks=[record],
    )
    (out / f"rank{result.global_rank}.json").write_text(
        json.dumps(
            {
                "global_rank": result.global_rank,
                "world_size": result.world_size,
                "best_val_acc": result.best_val_acc,
                "epochs": result.epochs,
                "history": result.history,
                "run_id": result.run_id,
                "seen": record.seen,
            }
        )
    )


if __name__ == "__main__":
    main()
