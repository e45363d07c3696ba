"""Field stage: accuracy on realistic images through the serving path; promotes the champion.

    python -m pipeline.field models/model.onnx data/processed

Builds each field set from the MNIST test split (``field`` params: size, seed),
scores it as the service would (bytes -> imaging -> ONNX Runtime), writes
metrics/field.json and a grid of each set's failures under plots/, logs both
to the train stage's MLflow run, and moves the registry's ``champion`` alias
to this model only if it is at least as good on MNIST test and every field set.
"""

import argparse
import logging
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import FieldConfig, MlflowConfig, load_params
from mnist_mlops.core.fileio import read_json, write_json
from mnist_mlops.data.splits import load_splits
from mnist_mlops.evaluation.fieldscore import plot_failures, score_set
from mnist_mlops.evaluation.fieldsets import build_set
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.tracking.registry import promote_if_better, registered_version
from mnist_mlops.tracking.runs import log_to_run, read_run_ref

log = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("processed_dir")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="metrics/field.json")
    parser.add_argument("--eval-metrics", default="metrics/evaluate.json")
    parser.add_argument("--plots-dir", default="plots")
    args = parser.parse_args()
    params = load_params(args.params)
    cfg = FieldConfig.from_params(params)
    mlflow_cfg = MlflowConfig.from_params(params)
    splits, _ = load_splits(args.processed_dir)
    results, plots = {}, []
    for name in cfg.sets:
        blobs, labels = build_set(name, splits.x_test, splits.y_test, cfg.n_per_set, cfg.seed)
        score = score_set(args.onnx, blobs, labels)
        results[name] = {"accuracy": score.accuracy, "n": len(labels), "refused": score.refused}
        plot = Path(args.plots_dir) / f"field_{name}.png"
        plot_failures(blobs, score, f"field set {name!r}", plot)
        plots.append(plot)
        log.info("field set %s: accuracy %.4f", name, score.accuracy)
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
        summary["champion"] = promote_if_better(uri, name, version, compared)
    write_json(args.metrics, summary)


if __name__ == "__main__":
    run_stage(main)
