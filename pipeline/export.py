"""Export stage: ONNX with normalisation inside, verified against PyTorch on the test set.

    python -m pipeline.export models/model.ckpt data/processed models/model.onnx

Writes the model, its card (models/model.json via :class:`ModelCard`: SHA-256,
version, I/O names, nothing volatile), its int8 copy beside it (models/model.int8.onnx,
card models/model.int8.json; made as ``export.quantize`` says) and metrics/export.json
(parity with PyTorch, and the int8 model's with the float one under ``int8``); logs the
ONNX model and the int8 file to the MLflow run and registers the model, tagged with the
int8 file's SHA-256 and artifact path (a rerun with the same bytes from the same run reuses
that run's version: ``mnist_mlops.export.register``); the field stage then decides which of
the two serves and whether the version becomes the ``champion`` (the registry, not the
card, records registry versions; metrics/export.json names the one this export is).
"""

import argparse
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import ExportConfig, MlflowConfig, load_params
from mnist_mlops.export.stage import ExportStagePaths, run_export_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("processed_dir")
    parser.add_argument("onnx_out")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="metrics/export.json")
    parser.add_argument("--eval-metrics", default="metrics/evaluate.json")
    args = parser.parse_args()
    params = load_params(args.params)
    paths = ExportStagePaths(
        checkpoint=Path(args.checkpoint),
        processed_dir=Path(args.processed_dir),
        onnx=Path(args.onnx_out),
        metrics=Path(args.metrics),
        eval_metrics=Path(args.eval_metrics),
    )
    run_export_stage(
        paths,
        ExportConfig.from_params(params),
        registered_model=MlflowConfig.from_params(params).registered_model,
    )


if __name__ == "__main__":
    run_stage(main)
