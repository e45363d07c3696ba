"""Bulk scoring: a folder of images, an .npy or an IDX file -> predictions in Parquet or CSV.

    python -m pipeline.score models/served.json scans/ predictions.parquet
    python -m pipeline.score models/model.onnx scans/ predictions.parquet  # float32
    python -m pipeline.score models:/mnist-mlp@champion digits.npy predictions.csv
    python -m pipeline.score models/served.json digits.npy out.parquet --engine ray \\
        --ray-address auto

``models/served.json`` scores with the artifact the gate chose to serve (int8 or
float32), as the service does.

Not a DVC stage: users run it on their own data. Writes the output and, for image
folders, ``<output stem>.errors.csv`` (files skipped, with the reason), both atomically;
a killed run resumes where it stopped when rerun with the same arguments. Prints one
summary line; records an MLflow run in the ``mnist-scoring`` experiment. Exit status 0
when everything was scored, 1 when some files were skipped, 2 on a one-line error.
"""

import argparse
import sys

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import MlflowConfig, load_params
from mnist_mlops.scoring.job import ENGINES, score
from mnist_mlops.scoring.record import record_run
from mnist_mlops.tracking.runs import resolve_tracking_uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", help="models/served.json (the gate's choice), an .onnx, or models:/<name>@<alias>"
    )
    parser.add_argument("input", help="folder of images (recursive), N x 28 x 28 .npy, or IDX")
    parser.add_argument("output", help="predictions file: .parquet or .csv")
    parser.add_argument("--engine", choices=ENGINES, default="local")
    parser.add_argument("--workers", type=int, help="local processes (default: all CPUs)")
    parser.add_argument("--part-size", type=int, help="inputs per resumable part")
    parser.add_argument("--ray-address", help="a Ray cluster (default: $RAY_ADDRESS or local)")
    parser.add_argument("--ray-actors", type=int, help="predictor actors (default: CPUs / 2)")
    parser.add_argument("--ray-actor-cpus", type=int, default=1, help="CPUs = ORT threads each")
    parser.add_argument("--no-track", action="store_true", help="do not record an MLflow run")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    tracking_uri = resolve_tracking_uri(
        MlflowConfig.from_params(load_params(args.params)).tracking_uri
    )
    summary = score(
        args.model,
        args.input,
        args.output,
        engine=args.engine,
        tracking_uri=tracking_uri,
        workers=args.workers,
        part_size=args.part_size,
        ray_options={
            "address": args.ray_address,
            "actors": args.ray_actors,
            "actor_cpus": args.ray_actor_cpus,
        },
    )
    if not args.no_track:
        record_run(tracking_uri, summary)
    print(summary.line())
    if summary.failed:
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
