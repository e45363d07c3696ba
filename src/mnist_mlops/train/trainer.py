"""The Lightning Trainer that ``train`` fits with, shared with the speed benchmark so it
times the same thing, and the two callbacks every training run has.
"""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from mnist_mlops.core.config import TrainConfig

HISTORY_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")


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


def native_bf16_cpu() -> bool:
    """Does this CPU compute bfloat16 in hardware (AVX512-BF16 or AMX)? Elsewhere torch
    emulates it, slower than float32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's, private
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(cfg: TrainConfig) -> str:
    """``train.precision``, with "auto" made concrete for this machine.

    On a CPU with native bfloat16, "bf16-mixed" trains the MLP faster than float32 with
    the same accuracy (bench/results/field_ideas.jsonl); on other CPUs it would be slower,
    and on a GPU whether it pays depends on the card, so "auto" is "32-true" there.
    """
    if cfg.precision != "auto":
        return cfg.precision
    import torch

    gpu = cfg.accelerator not in ("auto", "cpu") or (
        cfg.accelerator == "auto"
        and (torch.cuda.is_available() or torch.backends.mps.is_available())
    )
    return "bf16-mixed" if not gpu and native_bf16_cpu() else "32-true"


def build_trainer(
    cfg: TrainConfig, logger: Logger | bool, callbacks: list[Callback], **overrides: Any
) -> pl.Trainer:
    """A Trainer for ``cfg``: ``train`` fits with it, the speed benchmark times it.

    Per-step overhead is kept low: no progress bar off a terminal, no model
    summary, no sanity validation, and metrics are logged once per epoch.
    """
    kwargs: dict[str, Any] = dict(
        accelerator=cfg.accelerator,
        devices=int(cfg.devices) if cfg.devices.isdigit() else cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        max_epochs=cfg.max_epochs,
        precision=resolve_precision(cfg),
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


def best_checkpoint(folder: str | os.PathLike[str]) -> ModelCheckpoint:
    """Keeps one checkpoint in ``folder``: the epoch with the best validation accuracy."""
    return ModelCheckpoint(
        dirpath=folder,
        monitor="val/acc",
        mode="max",
        save_top_k=1,
        filename="best",
        save_weights_only=False,
    )
