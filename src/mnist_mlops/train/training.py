"""Fit the classifier with Lightning, tracked in MLflow.

``train`` is what the train stage calls: it seeds everything, builds the
DataModule and the model, fits on the GPU when one is present (CPU otherwise),
keeps the checkpoint with the best validation accuracy, and returns the
per-epoch history (the same numbers the logger sends to MLflow, collected by one
callback). Without an MLflow config it trains untracked (the GPU box has no MLflow).
The same params run on several processes, GPUs or nodes: set ``train.strategy``
(``ddp``), ``train.devices`` and ``train.num_nodes``; the DataModule shards each
epoch by rank and only rank 0 writes the checkpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import Logger, MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from mnist_mlops.core.config import MlflowConfig, TrainConfig
from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_path, sha256_file
from mnist_mlops.data.corrections import load_part
from mnist_mlops.data.prepared import load_variants
from mnist_mlops.tracking.runs import client, git_commit
from mnist_mlops.train.datamodule import MNISTDataModule
from mnist_mlops.train.module import LitMLP
from mnist_mlops.train.network import count_parameters, is_finite_model
from mnist_mlops.train.run_extras import SystemMetrics, log_datasets

HISTORY_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    best_val_acc: float
    epochs: int
    seconds: float
    device: str
    n_parameters: int
    history: list[dict[str, float]]
    global_rank: int = 0  # under DDP every process returns; only rank 0 writes and tracks
    world_size: int = 1


class EpochHistory(Callback):
    """Collects the epoch-level metrics in memory: the learning curve, tracked or not.

    Read when the next epoch starts (and when training ends): a callback's
    ``on_train_epoch_end`` runs before the module's, where train/* are logged.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def _record(self, trainer: pl.Trainer, epoch: int) -> None:
        metrics = trainer.callback_metrics
        if epoch > len(self.rows) and all(k in metrics for k in HISTORY_KEYS):
            self.rows.append({"epoch": epoch, **{k: float(metrics[k]) for k in HISTORY_KEYS}})

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, trainer.current_epoch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, trainer.current_epoch)


def build_trainer(
    cfg: TrainConfig, logger: Logger | bool, callbacks: list[Callback], **overrides: Any
) -> pl.Trainer:
    """The Trainer that ``train`` uses, shared with the speed benchmark so it times the same.

    Per-step overhead is kept low: no progress bar off a terminal, no model
    summary, no sanity validation, and metrics are logged once per epoch.
    """
    kwargs: dict[str, Any] = dict(
        accelerator=cfg.accelerator,
        devices=int(cfg.devices) if cfg.devices.isdigit() else cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        max_epochs=cfg.max_epochs,
        precision=cfg.precision,
        deterministic=cfg.deterministic,
        benchmark=False,
        logger=logger,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=os.isatty(2),
        # Nothing is logged per step (on_step=False), so this only sets how often
        # Lightning looks; a large value keeps it off the hot loop.
        log_every_n_steps=max(cfg.log_every_n_steps, 1),
    )
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def extra_training_digits(
    prepared_dir: str | os.PathLike[str] | None,
    corrections_dir: str | os.PathLike[str] | None,
    corrections_weight: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The digits added to the train split: the prepare stage's, then each correction of the
    train part ``corrections_weight`` times. A few dozen corrections among ~170,000 images
    would change nothing; repeating them gives what users corrected a say in the loss, and
    the field stage's gate (holdout, MNIST test, field sets) decides whether that helped."""
    parts = [load_variants(prepared_dir)] if prepared_dir is not None else []
    if corrections_dir is not None and corrections_weight > 0:
        fixes = load_part(corrections_dir, "train")
        if len(fixes):
            parts.append((np.repeat(fixes.x, corrections_weight, axis=0),
                          np.repeat(fixes.y, corrections_weight)))  # fmt: skip
    if not parts:
        return None
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def train(
    cfg: TrainConfig,
    processed_dir: str | os.PathLike[str],
    checkpoint_out: str | os.PathLike[str],
    mlflow_cfg: MlflowConfig | None = None,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    callbacks: list[Callback] | None = None,
    prepared_dir: str | os.PathLike[str] | None = None,
    corrections_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train, write the best checkpoint atomically to ``checkpoint_out``, return the summary.

    With ``mlflow_cfg=None`` nothing is tracked (GPU boxes without MLflow, quick
    sweeps). ``callbacks`` are added to the Trainer's own (checkpoint, history).
    A tracked run gets each parameter once (flat names), the train/val splits as
    dataset inputs and system metrics. ``prepared_dir``: the prepare stage's extra
    training digits (:mod:`mnist_mlops.prepare.variants`), added to the train split;
    ``corrections_dir``: users' corrections (:mod:`mnist_mlops.data.corrections`), likewise.
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    extra = extra_training_digits(prepared_dir, corrections_dir, cfg.corrections_weight)
    dm = MNISTDataModule(processed_dir, batch_size=cfg.batch_size, seed=cfg.seed, extra_train=extra)
    _ = dm.splits  # load and validate now: a bad file fails before any run is created
    stats = dm.stats
    model = LitMLP(cfg, mean=stats["mean"], std=stats["std"])

    logger: MLFlowLogger | None = None
    if mlflow_cfg is not None:
        tags = {
            "git_commit": git_commit(),
            "dataset_sha256": sha256_file(Path(processed_dir) / "mnist.npz"),
            "stage": "train",
            **(extra_tags or {}),
        }
        logger = MLFlowLogger(
            experiment_name=mlflow_cfg.experiment,
            tracking_uri=mlflow_cfg.tracking_uri,
            run_name=run_name,
            tags=tags,
            log_model=False,
        )
    history = EpochHistory()
    ckpt_dir = Path(tempfile.mkdtemp(prefix="mnist-ckpt-"))
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        monitor="val/acc",
        mode="max",
        save_top_k=1,
        filename="best",
        save_weights_only=False,
    )
    extras = [SystemMetrics(mlflow_cfg.tracking_uri)] if mlflow_cfg is not None else []
    trainer = build_trainer(
        cfg,
        logger if logger is not None else False,
        [checkpoint, history, *extras, *(callbacks or [])],
        **(trainer_kwargs or {}),
    )
    # Before fit the Trainer does not know its rank yet; Lightning's env-derived one does.
    if logger is not None and rank_zero_only.rank == 0:
        splits = dm.splits
        log_datasets(
            mlflow_cfg.tracking_uri,
            logger.run_id or "",
            Path(processed_dir).resolve() / "mnist.npz",
            {"train": splits.split("train"), "val": splits.split("val")},
        )
        logger.log_hyperparams(
            {
                **cfg.model_dump(),
                "n_parameters": count_parameters(model.net),
                "train_size": stats["counts"]["train"],
                "train_extra_size": len(extra[1]) if extra is not None else 0,
                "val_size": stats["counts"]["val"],
            }
        )
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # Metrics are logged per epoch, so a short epoch vs log_every_n_steps is moot.
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval")
            trainer.fit(model, datamodule=dm)
        seconds = time.perf_counter() - started
        if not is_finite_model(model):
            raise UserError("training diverged (NaN/Inf weights); lower train.lr or use a schedule")
        if trainer.global_rank == 0:
            best = checkpoint.best_model_path
            if not best:
                raise UserError("no checkpoint was saved; is train.max_epochs >= 1?")
            with atomic_path(checkpoint_out) as tmp:
                shutil.copyfile(best, tmp)
    finally:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    run_id = (logger.run_id or "") if logger is not None else ""
    if logger is not None and trainer.global_rank == 0:
        client(mlflow_cfg.tracking_uri).log_metric(run_id, "train/seconds", seconds)
    rows = history.rows if trainer.global_rank == 0 else []
    return TrainResult(
        run_id=run_id,
        experiment_id=(logger.experiment_id or "") if logger is not None else "",
        best_val_acc=float(checkpoint.best_model_score or 0.0),
        epochs=trainer.current_epoch,
        seconds=seconds,
        device=str(trainer.strategy.root_device),
        n_parameters=count_parameters(model.net),
        history=rows,
        global_rank=trainer.global_rank,
        world_size=trainer.world_size,
    )
