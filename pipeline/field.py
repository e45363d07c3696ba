"""Field stage: the export's artifacts scored where users are; the one to serve is gated.

    python -m pipeline.field models/model.onnx data/processed --corrections data/corrections \\
        --int8 models/model.int8.onnx

Builds each field set from the MNIST test split (``field`` params: size, seed; their model
inputs saved for the reference stage: data/field_inputs.npz), and scores the float model and
the quantized one on them, on the users' corrections held out of training (``corrections``)
and on the MNIST test split, as the service would (bytes -> imaging -> ONNX Runtime). The
int8 model serves only if on no set it is lower than float32 beyond sampling noise
(field.gate_z). The served artifact's numbers go to metrics/field.json, to the train stage's
MLflow run with a grid of each set's failures under plots/, and to the champion gate, which
moves the registry's ``champion`` alias to this model only if it is no worse than the
champion on any of them (scoring the champion again first when it was scored on other
images). Last, models/served.json (beside the float model) names the artifact to serve.
"""

import argparse
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import FieldConfig, MlflowConfig, load_params
from mnist_mlops.gate.stage import FieldStagePaths, run_field_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path, help="the float model; served.json is written beside it")
    parser.add_argument("processed_dir", type=Path)
    parser.add_argument("--corrections", type=Path,
                        help="the corrections dataset: its holdout is scored")  # fmt: skip
    parser.add_argument("--int8", type=Path,
                        help="the int8 model: it serves if no worse beyond noise")  # fmt: skip
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="metrics/field.json")
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"))
    parser.add_argument("--field-inputs", type=Path, default=Path("data/field_inputs.npz"),
                        help="the sets' model inputs, for the reference stage")  # fmt: skip
    args = parser.parse_args()
    params = load_params(args.params)
    paths = FieldStagePaths(
        onnx=args.onnx,
        processed_dir=args.processed_dir,
        corrections=args.corrections,
        int8=args.int8,
        plots_dir=args.plots_dir,
        field_inputs=args.field_inputs,
    )
    model = MlflowConfig.from_params(params).registered_model
    outcome = run_field_stage(paths, FieldConfig.from_params(params), model)
    outcome.write(args.metrics, args.onnx.parent)


if __name__ == "__main__":
    run_stage(main)
