"""What a tracked training run carries: Lightning's logger with the run's tags, dataset
inputs and system metrics.

Lightning's ``MLFlowLogger`` logs params and metrics; the run page's *Datasets*
panel and *System metrics* tab stay empty unless the run also gets dataset
inputs (``mlflow.data``, with a digest) and a ``SystemMetricsMonitor``. Both
happen on global rank 0 only, like the logger itself, so a DDP run is one run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import MLFlowLogger

from mnist_mlops.core.config import MlflowConfig
from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.tracking.inputs import log_inputs
from mnist_mlops.tracking.runs import git_commit

# Seconds between samples; MLflow's MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides it.
SYSTEM_METRICS_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Tracking:
    """Where a tracked run goes (the store and experiment), its name and extra tags."""

    mlflow: MlflowConfig
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def log_datasets(
    mlflow_client: Any,
    run_id: str,
    source: str | os.PathLike[str],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    """Log each ``name -> (images, labels)`` split as a dataset input of ``run_id``
    through ``mlflow_client`` (the run logger's own, ``MLFlowLogger.experiment``).

    The context tag is the split name (``train``, ``val``); MLflow computes the
    digest from the arrays, so two runs on the same data show the same digest.
    """
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for name, (x, y) in splits.items():
        with warnings.catch_warnings():
            # MLflow registers its local-file source twice and warns that a path is ambiguous.
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
            dataset = mlflow.data.from_numpy(x, source=str(source), targets=y, name=f"mnist-{name}")
        tags = [InputTag(key="mlflow.data.context", value=name)]
        inputs.append(DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags))
    log_inputs(mlflow_client, run_id, inputs)


def run_logger(tracking: Tracking, processed_dir: str | os.PathLike[str]) -> MLFlowLogger:
    """Lightning's MLflow logger, its run tagged with the code and the data it trains on."""
    tags = {
        "git_commit": git_commit(),
        "dataset_sha256": sha256_file(Path(processed_dir) / "mnist.npz"),
        "stage": "train",
        **tracking.tags,
    }
    return MLFlowLogger(
        experiment_name=tracking.mlflow.experiment,
        tracking_uri=tracking.mlflow.tracking_uri,
        run_name=tracking.run_name,
        tags=tags,
        log_model=False,
    )


class SystemMetrics(Callback):
    """Samples CPU, memory, disk, network (and GPU with pynvml) into the logger's run.

    MLflow's ``log_system_metrics`` only hooks runs started with ``mlflow.start_run``;
    the logger creates its run through the client, so the monitor is started here.
    """

    def __init__(self, tracking_uri: str, interval_s: float = SYSTEM_METRICS_INTERVAL_S) -> None:
        self.tracking_uri, self.interval_s = tracking_uri, interval_s
        self._monitor: Any = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = trainer.logger
        if trainer.global_rank != 0 or not isinstance(logger, MLFlowLogger):
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(
            logger.run_id,
            sampling_interval=self.interval_s,
            tracking_uri=self.tracking_uri,
        )
        self._monitor.start()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Runs on success and on error, before the logger marks the run finished.
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        monitor.finish()
        # The monitor publishes only after a full interval; a fit shorter than that
        # (or its tail) would leave nothing, so one closing sample is logged here.
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
