"""Train stage: fit the MLP with Lightning (GPU if present), tracked in MLflow.

    python -m pipeline.train data/processed models/model.ckpt --prepared data/prepared \
        --corrections data/corrections

Also writes models/run.json (the MLflow run the later stages add to),
metrics/train.json and plots/learning_curve.csv. Runs go to $MLFLOW_TRACKING_URI
when it is set (a shared server), else to params.yaml's mlflow.tracking_uri.
"""

import argparse
import os
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import MlflowConfig, TrainConfig, load_params
from mnist_mlops.core.fileio import write_csv, write_json
from mnist_mlops.data.splits import load_splits
from mnist_mlops.tracking.runs import prepare_store, resolve_tracking_uri
from mnist_mlops.train.curves import diagnose
from mnist_mlops.train.pause import pause_hooks
from mnist_mlops.train.trainer import HISTORY_KEYS
from mnist_mlops.train.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processed_dir")
    parser.add_argument("checkpoint")
    parser.add_argument(
        "--prepared", help="the prepare stage's folder: its extra digits join the train split"
    )
    parser.add_argument(
        "--corrections",
        help="the users' corrections (pipeline.export_corrections): the train part joins too",
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--curve", default="plots/learning_curve.csv")
    args = parser.parse_args()
    params = load_params(args.params)
    cfg = TrainConfig.from_params(params)
    mlflow_cfg = MlflowConfig.from_params(params)
    # Decided once here and recorded in run.json, which the later stages follow.
    mlflow_cfg = mlflow_cfg.replace(tracking_uri=resolve_tracking_uri(mlflow_cfg.tracking_uri))
    load_splits(args.processed_dir)  # bad data fails here, before the MLflow store is touched
    # Schema and experiment are created under a lock: parallel runs can share one sqlite store.
    prepare_store(mlflow_cfg.tracking_uri, mlflow_cfg.experiment)
    # DVC names every experiment (queued ones too); the MLflow run carries the same name.
    exp = os.environ.get("DVC_EXP_NAME")
    result = train(
        cfg,
        args.processed_dir,
        args.checkpoint,
        mlflow_cfg,
        run_name=exp,
        extra_tags={"dvc_experiment": exp} if exp else None,
        prepared_dir=args.prepared,
        callbacks=pause_hooks(),  # only fault-injection tests set its variable
        corrections_dir=args.corrections,
    )
    if result.global_rank != 0:
        return  # under torchrun/SLURM every rank runs this; rank 0 alone writes the outputs
    write_json(
        Path(args.checkpoint).with_name("run.json"),
        {
            "run_id": result.run_id,
            "experiment_id": result.experiment_id,
            "tracking_uri": mlflow_cfg.tracking_uri,
            "experiment": mlflow_cfg.experiment,
        },
    )
    last = result.history[-1] if result.history else {}
    write_json(
        args.metrics,
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
    write_csv(args.curve, ["epoch", *HISTORY_KEYS], result.history)


if __name__ == "__main__":
    run_stage(main)
