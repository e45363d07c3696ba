"""Reference stage: what the service would log for the images the model was gated on.

    python -m pipeline.reference models/served.json data/processed data/reference.parquet

MNIST test digits (``reference.test_n`` of them, uploaded as PNG files) and the field sets
(the images the field stage scored, as it preprocessed them: ``--field-inputs``), each through the
serving path (imaging -> ONNX), described by the columns the inference log records
(src/mnist_mlops/drift/reference.py). ``python -m pipeline.monitor`` compares the log with it.
"""

import argparse
import logging

import numpy as np

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import FieldConfig, ReferenceConfig, load_params
from mnist_mlops.core.fileio import atomic_path
from mnist_mlops.data.splits import load_splits
from mnist_mlops.drift.reference import build_reference
from mnist_mlops.evaluation.field_inputs import load_field_inputs
from mnist_mlops.inference.serving_choice import resolve_artifact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", help="a model.onnx, or the gate's served.json (its choice)")
    parser.add_argument("processed_dir")
    parser.add_argument("out")
    parser.add_argument("--field-inputs", default="data/field_inputs.npz",
                        help="the field stage's set inputs")  # fmt: skip
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    field, cfg = FieldConfig.from_params(params), ReferenceConfig.from_params(params)
    splits, _ = load_splits(args.processed_dir)
    n = min(cfg.test_n, len(splits.y_test))
    picks = np.random.default_rng(field.seed).choice(len(splits.y_test), n, replace=False)
    table = build_reference(
        resolve_artifact(args.onnx),
        splits.x_test[np.sort(picks)],
        splits.y_test[np.sort(picks)],
        load_field_inputs(args.field_inputs),
    )
    with atomic_path(args.out) as tmp:
        table.to_parquet(tmp, index=False)
    counts = table.groupby("set", sort=False).size().to_dict()
    logging.getLogger(__name__).info("reference rows per set: %s", counts)


if __name__ == "__main__":
    run_stage(main)
