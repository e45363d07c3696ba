"""Evaluate stage: test metrics, confusion matrix, per-class scores, shift robustness.

    python -m pipeline.evaluate models/model.ckpt data/processed

Writes metrics/*.json and plots/* and logs them to the train stage's MLflow run.
"""

import argparse
import logging
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.data.splits import load_splits
from mnist_mlops.evaluation.testset import evaluate
from mnist_mlops.tracking.runs import log_to_run, read_run_ref
from mnist_mlops.train.checkpoint import load_net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("processed_dir")
    parser.add_argument("--metrics-dir", default="metrics")
    parser.add_argument("--plots-dir", default="plots")
    args = parser.parse_args()
    net = load_net(args.checkpoint)
    splits, _ = load_splits(args.processed_dir)
    metrics = evaluate(net, splits.x_test, splits.y_test, args.metrics_dir, args.plots_dir)
    ref = read_run_ref(Path(args.checkpoint).with_name("run.json"))
    m, p = Path(args.metrics_dir), Path(args.plots_dir)
    log_to_run(
        ref,
        {
            "test/acc": metrics["test"]["accuracy"],
            "test/loss": metrics["test"]["loss"],
            "test/macro_f1": metrics["test"]["macro_f1"],
            **{f"shift/acc_{d}px": a for d, a in metrics["shift_accuracy"].items()},
        },
        [
            m / "evaluate.json",
            m / "per_class.json",
            m / "confusion_matrix.json",
            p / "confusion_matrix.png",
            p / "misclassified.png",
            p / "shift_robustness.png",
        ],
        artifact_path="evaluation",
    )
    logging.getLogger(__name__).info("test accuracy %.4f", metrics["test"]["accuracy"])


if __name__ == "__main__":
    run_stage(main)
