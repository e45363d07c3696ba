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
from mnist_mlops.train.stage import TrainStageFiles, run_train_stage
from mnist_mlops.train.training import TrainInputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processed_dir")
    parser.add_argument("checkpoint")
    parser.add_argument(
        "--prepared", help="the prepare stage's folder: its extra digits join the train split"
    )
    parser.add_argument(
        "--corrections",
        help="the users' corrections (pipeline.corrections): the train part joins too",
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--curve", default="plots/learning_curve.csv")
    args = parser.parse_args()
    params = load_params(args.params)
    run_train_stage(
        TrainConfig.from_params(params),
        MlflowConfig.from_params(params),
        TrainInputs(args.processed_dir, args.prepared, args.corrections),
        TrainStageFiles(Path(args.checkpoint), Path(args.metrics), Path(args.curve)),
        # DVC names every experiment (queued ones too); the MLflow run carries the same name.
        experiment_name=os.environ.get("DVC_EXP_NAME"),
    )


if __name__ == "__main__":
    run_stage(main)
