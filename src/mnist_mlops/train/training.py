"""Fit the classifier with Lightning, tracked in MLflow.

``train`` is what the train stage calls (through :mod:`mnist_mlops.train.stage`). It reads
top to bottom: seed, data, model, logger, Trainer, fit, keep the checkpoint with the best
validation accuracy, and return the per-epoch history (the same numbers the logger sends
to MLflow, collected by one callback). It fits on the GPU when one is present (CPU
otherwise); without ``tracking`` it trains untracked (the GPU box has no MLflow).
The same params run on several processes, GPUs or nodes: set ``train.strategy``
(``ddp``), ``train.devices`` and ``train.num_nodes``; the DataModule shards each
epoch by rank and only rank 0 writes the checkpoint.

    result = train(cfg, TrainInputs("data/processed"), "models/model.ckpt")
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from mnist_mlops.core.config import TrainConfig
from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_path
from mnist_mlops.train.datamodule import MNISTDataModule
from mnist_mlops.train.extra_digits import extra_training_digits
from mnist_mlops.train.module import LitMLP
from mnist_mlops.train.network import count_parameters, is_finite_model
from mnist_mlops.train.run_extras import SystemMetrics, Tracking, log_datasets, run_logger
from mnist_mlops.train.trainer import EpochHistory, best_checkpoint, build_trainer

__all__ = ["TrainInputs", "TrainResult", "Tracking", "train"]


@dataclass(frozen=True)
class TrainInputs:
    """Where the training digits come from: the split stage's folder, and optionally the
    prepare stage's extra digits (:mod:`mnist_mlops.data.prepared`) and the users'
    corrections (:mod:`mnist_mlops.corrections.dataset`), both added to the train split."""

    processed_dir: str | os.PathLike[str]
    prepared_dir: str | os.PathLike[str] | None = None
    corrections_dir: str | os.PathLike[str] | None = None


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    best_val_acc: float
    epochs: int
    seconds: float
    device: str
    precision: str  # as trained: train.precision with "auto" resolved for this machine
    n_parameters: int
    history: list[dict[str, float]]
    global_rank: int = 0  # under DDP every process returns; only rank 0 writes and tracks
    world_size: int = 1


def train(
    cfg: TrainConfig,
    inputs: TrainInputs,
    checkpoint_out: str | os.PathLike[str],
    tracking: Tracking | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    trainer_overrides: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train, write the best checkpoint atomically to ``checkpoint_out``, return the summary.

    With ``tracking=None`` nothing is tracked (GPU boxes without MLflow, quick sweeps).
    A tracked run gets each parameter once (flat names), the train/val splits as
    dataset inputs and system metrics. ``callbacks`` join the Trainer's own (checkpoint,
    history); ``trainer_overrides`` replace :func:`build_trainer`'s arguments.
    """
    # The order matters for reproducibility: the seed, then the data, then the weights.
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = _datamodule(cfg, inputs)
    model = LitMLP(cfg, mean=dm.mean, std=dm.std)
    logger = run_logger(tracking, inputs.processed_dir) if tracking is not None else None
    tracked = [SystemMetrics(tracking.mlflow.tracking_uri)] if tracking is not None else []
    with tempfile.TemporaryDirectory(prefix="mnist-ckpt-", ignore_cleanup_errors=True) as folder:
        checkpoint, history = best_checkpoint(folder), EpochHistory()
        trainer = build_trainer(
            cfg,
            logger or False,
            [checkpoint, history, *tracked, *callbacks],
            **(trainer_overrides or {}),
        )
        # Before fit the Trainer does not know its rank yet; Lightning's env-derived one does.
        if logger is not None and rank_zero_only.rank == 0:
            _log_run_inputs(logger, inputs.processed_dir, cfg, dm, model)
        seconds = _fit(trainer, model, dm)
        if trainer.global_rank == 0:
            _keep_best(checkpoint, checkpoint_out)
    if logger is not None and trainer.global_rank == 0:
        logger.experiment.log_metric(logger.run_id, "train/seconds", seconds)
    return _result(trainer, model, logger, checkpoint, history, seconds)


def _datamodule(cfg: TrainConfig, inputs: TrainInputs) -> MNISTDataModule:
    """The splits plus the extra digits, loaded and validated now: a bad file fails
    before any MLflow run is created."""
    extra = extra_training_digits(
        inputs.prepared_dir, inputs.corrections_dir, cfg.corrections_weight
    )
    return MNISTDataModule(
        inputs.processed_dir, batch_size=cfg.batch_size, seed=cfg.seed, extra_train=extra
    )


def _log_run_inputs(
    logger: MLFlowLogger,
    processed_dir: str | os.PathLike[str],
    cfg: TrainConfig,
    dm: MNISTDataModule,
    model: LitMLP,
) -> None:
    """The run's dataset inputs and its parameters, each once under its flat name."""
    train, val = dm.splits.split("train"), dm.splits.split("val")
    log_datasets(
        logger.experiment,
        logger.run_id or "",
        Path(processed_dir).resolve() / "mnist.npz",
        {"train": train, "val": val},
    )
    logger.log_hyperparams(
        {
            **cfg.model_dump(),
            "n_parameters": count_parameters(model.net),
            "train_size": len(train[1]),
            "train_extra_size": len(dm.extra_train[1]) if dm.extra_train is not None else 0,
            "val_size": len(val[1]),
        }
    )


def _fit(trainer: pl.Trainer, model: LitMLP, dm: MNISTDataModule) -> float:
    """Fit; the seconds it took. Weights that are not finite are an error, not a model."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Metrics are logged per epoch, so a short epoch vs log_every_n_steps is moot.
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval")
        trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - started
    if not is_finite_model(model):
        raise UserError("training diverged (NaN/Inf weights); lower train.lr or use a schedule")
    return seconds


def _keep_best(checkpoint: ModelCheckpoint, checkpoint_out: str | os.PathLike[str]) -> None:
    """Copy the best checkpoint to ``checkpoint_out`` atomically (rank 0 only)."""
    best = checkpoint.best_model_path
    if not best:
        raise UserError("no checkpoint was saved; is train.max_epochs >= 1?")
    with atomic_path(checkpoint_out) as tmp:
        shutil.copyfile(best, tmp)


def _result(
    trainer: pl.Trainer,
    model: LitMLP,
    logger: MLFlowLogger | None,
    checkpoint: ModelCheckpoint,
    history: EpochHistory,
    seconds: float,
) -> TrainResult:
    """The summary every rank returns; only rank 0 carries the learning curve."""
    return TrainResult(
        run_id=(logger.run_id or "") if logger is not None else "",
        experiment_id=(logger.experiment_id or "") if logger is not None else "",
        best_val_acc=float(checkpoint.best_model_score or 0.0),
        epochs=trainer.current_epoch,
        seconds=seconds,
        device=str(trainer.strategy.root_device),
        precision=str(trainer.precision),
        n_parameters=count_parameters(model.net),
        history=history.rows if trainer.global_rank == 0 else [],
        global_rank=trainer.global_rank,
        world_size=trainer.world_size,
    )
