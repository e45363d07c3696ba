"""The train stage as one call: the MLflow store made ready, the fit, and the files the
later stages and DVC read.

    run_train_stage(cfg, mlflow_cfg, TrainInputs("data/processed"), TrainStageFiles(...))

Besides the checkpoint it writes the run reference (``run.json`` beside the checkpoint:
the MLflow run that evaluate and export add to), the metrics and the learning curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_mlops.core.config import MlflowConfig, TrainConfig
from mnist_mlops.core.fileio import write_csv, write_json
from mnist_mlops.data.splits import load_splits
from mnist_mlops.tracking.runs import prepare_store, resolve_tracking_uri
from mnist_mlops.train.curves import diagnose
from mnist_mlops.train.pause import pause_hooks
from mnist_mlops.train.trainer import HISTORY_KEYS
from mnist_mlops.train.training import Tracking, TrainInputs, TrainResult, train


@dataclass(frozen=True)
class TrainStageFiles:
    """What the stage writes."""

    checkpoint: Path
    metrics: Path  # best val accuracy, timing, last epoch's numbers, the curve's diagnosis
    curve: Path  # one row per epoch: the DVC plot

    @property
    def run_ref(self) -> Path:
        """Found beside the checkpoint by the stages that log to the same run."""
        return self.checkpoint.with_name("run.json")


def run_train_stage(
    cfg: TrainConfig,
    mlflow_cfg: MlflowConfig,
    inputs: TrainInputs,
    files: TrainStageFiles,
    experiment_name: str | None = None,
) -> TrainResult:
    """Train tracked and write ``files``; under torchrun or SLURM every rank calls this and
    rank 0 alone writes. ``experiment_name``: DVC's name for this experiment, which the
    MLflow run carries too (its name and a tag)."""
    # Decided once here and recorded in run.json, which the later stages follow.
    mlflow_cfg = mlflow_cfg.replace(tracking_uri=resolve_tracking_uri(mlflow_cfg.tracking_uri))
    load_splits(inputs.processed_dir)  # bad data fails here, before the MLflow store is touched
    # Schema and experiment are created under a lock: parallel runs can share one sqlite store.
    prepare_store(mlflow_cfg.tracking_uri, mlflow_cfg.experiment)
    tags = {"dvc_experiment": experiment_name} if experiment_name else {}
    result = train(
        cfg,
        inputs,
        files.checkpoint,
        Tracking(mlflow_cfg, run_name=experiment_name, tags=tags),
        callbacks=pause_hooks(),  # only fault-injection tests set its variable
    )
    if result.global_rank == 0:
        _write_outputs(result, mlflow_cfg, files)
    return result


def _write_outputs(result: TrainResult, mlflow_cfg: MlflowConfig, files: TrainStageFiles) -> None:
    """The run reference, the metrics (the last epoch's and a diagnosis) and the curve."""
    write_json(
        files.run_ref,
        {
            "run_id": result.run_id,
            "experiment_id": result.experiment_id,
            "tracking_uri": mlflow_cfg.tracking_uri,
            "experiment": mlflow_cfg.experiment,
        },
    )
    last = result.history[-1] if result.history else {}
    write_json(
        files.metrics,
        {
            "best_val_acc": result.best_val_acc,
            "epochs": result.epochs,
            "seconds": round(result.seconds, 2),
            "device": result.device,
            "precision": result.precision,
            "n_parameters": result.n_parameters,
            **{k: last.get(k) for k in HISTORY_KEYS},
            "diagnosis": diagnose(result.history),
        },
    )
    write_csv(files.curve, ["epoch", *HISTORY_KEYS], result.history)
