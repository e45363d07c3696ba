"""Field stage: accuracy on realistic images through the serving path; promotes the champion.

    python -m pipeline.field models/model.onnx data/processed --corrections data/corrections

Builds each field set from the MNIST test split (``field`` params: size, seed),
scores it as the service would (bytes -> imaging -> ONNX Runtime; sets built in parallel,
their model inputs saved for the reference stage: data/field_inputs.npz), scores the users'
corrections held out of training (the ``corrections`` set, when there are any), writes
metrics/field.json and a grid of each set's failures under plots/, logs both to the
train stage's MLflow run, and moves the registry's ``champion`` alias to this model only
if it is at least as good on MNIST test and every set (beyond sampling noise: field.gate_z).
When the champion was scored on other images (new corrections, regenerated sets), it is
scored again on these first.
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import FieldConfig, MlflowConfig, load_params
from mnist_mlops.core.fileio import read_json, write_json
from mnist_mlops.data.corrections import HOLDOUT_SET, load_part
from mnist_mlops.data.splits import load_splits
from mnist_mlops.evaluation.field_inputs import build_field_inputs, save_field_inputs
from mnist_mlops.evaluation.fieldscore import (
    SetScore,
    plot_failures,
    rescore,
    score_inputs,
    sets_fingerprint,
)
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.tracking.registry import (
    noise_tolerance,
    promote_if_better,
    registered_version,
)
from mnist_mlops.tracking.runs import log_to_run, read_run_ref

log = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("processed_dir")
    parser.add_argument("--corrections", help="the corrections dataset: its holdout is scored")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="metrics/field.json")
    parser.add_argument("--eval-metrics", default="metrics/evaluate.json")
    parser.add_argument("--plots-dir", default="plots")
    parser.add_argument("--field-inputs", default="data/field_inputs.npz",
                        help="the sets' model inputs, for the reference stage")  # fmt: skip
    args = parser.parse_args()
    params = load_params(args.params)
    cfg = FieldConfig.from_params(params)
    mlflow_cfg = MlflowConfig.from_params(params)
    splits, _ = load_splits(args.processed_dir)
    scores: dict[str, SetScore] = {}
    plots = []
    sets = build_field_inputs(cfg.sets, splits.x_test, splits.y_test, cfg.n_per_set, cfg.seed)
    for name, s in sets.items():
        scores[name] = score_inputs(args.onnx, s.inputs, s.labels, s.ok)
        plot = Path(args.plots_dir) / f"field_{name}.png"
        plot_failures(s.blobs, scores[name], f"field set {name!r}", plot)
        plots.append(plot)
    save_field_inputs(args.field_inputs, sets)  # the reference stage's images
    holdout = load_part(args.corrections, "holdout") if args.corrections else None
    if holdout is not None and len(holdout):
        scores[HOLDOUT_SET] = score_inputs(args.onnx, holdout.x.astype(np.float32), holdout.y)
    for name, score in scores.items():
        log.info("field set %s: accuracy %.4f (n=%d)", name, score.accuracy, len(score.labels))
    results = {
        name: {"accuracy": s.accuracy, "n": len(s.labels), "refused": s.refused}
        for name, s in scores.items()
    }
    test_acc = float(read_json(args.eval_metrics)["test"]["accuracy"])
    accuracies = {name: r["accuracy"] for name, r in results.items()}
    summary = {"sets": results, "min_accuracy": min(accuracies.values(), default=0.0)}
    ref = read_run_ref(Path(args.onnx).with_name("run.json"))
    logged = log_to_run(
        ref,
        {f"field/acc_{name}": a for name, a in accuracies.items()},
        [*plots],
        artifact_path="field",
    )
    card = ModelCard.read_beside(args.onnx)
    uri, name = ref["tracking_uri"], mlflow_cfg.registered_model
    version = registered_version(uri, name, ref["run_id"], card.sha256) if logged else None
    if version is not None:
        compared = {"test_accuracy": test_acc, **{f"field_{k}": v for k, v in accuracies.items()}}

        def on_these_sets(other_onnx: Path) -> dict[str, float]:
            """Another model's numbers on exactly these images (the test split as arrays)."""
            test = score_inputs(other_onnx, splits.x_test.astype(np.float32), splits.y_test)
            return {
                "test_accuracy": test.accuracy,
                **{f"field_{k}": rescore(other_onnx, s).accuracy for k, s in scores.items()},
            }

        summary["champion"] = promote_if_better(
            uri,
            name,
            version,
            compared,
            sets_sha256=sets_fingerprint(scores, splits.x_test, splits.y_test),
            rescore=on_these_sets,
            tolerances={
                "test_accuracy": noise_tolerance(test_acc, len(splits.y_test), cfg.gate_z),
                **{
                    f"field_{k}": noise_tolerance(s.accuracy, len(s.labels), cfg.gate_z)
                    for k, s in scores.items()
                },
            },
        )
    write_json(args.metrics, summary)


if __name__ == "__main__":
    run_stage(main)
