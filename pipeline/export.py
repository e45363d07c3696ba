"""Export stage: ONNX with normalisation inside, verified against PyTorch on the test set.

    python -m pipeline.export models/model.ckpt data/processed models/model.onnx

Writes the model, its card (models/model.json via :class:`ModelCard`: SHA-256,
version, I/O names, nothing volatile) and metrics/export.json (parity); logs the ONNX
model to the MLflow run and registers it; the field stage then decides whether it
becomes the ``champion`` (the registry, not the card, records registry versions).
"""

import argparse
import logging
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import ExportConfig, MlflowConfig, load_params
from mnist_mlops.core.fileio import read_json, write_json
from mnist_mlops.data.splits import load_splits
from mnist_mlops.export.to_onnx import INPUT_NAME, OUTPUT_NAME, export_and_verify
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.tracking.registry import register_onnx
from mnist_mlops.tracking.runs import log_to_run, read_run_ref, run_tags
from mnist_mlops.train.checkpoint import load_net

log = logging.getLogger(__name__)


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
    cfg = ExportConfig.from_params(params)
    mlflow_cfg = MlflowConfig.from_params(params)
    net = load_net(args.checkpoint)
    splits, stats = load_splits(args.processed_dir)
    parity = export_and_verify(net, args.onnx_out, splits.x_test, opset=cfg.opset, atol=cfg.atol)
    write_json(
        args.metrics,
        {
            "n_images": parity.n_images,
            "max_abs_diff": parity.max_abs_diff,
            "argmax_mismatches": parity.argmax_mismatches,
            "atol": cfg.atol,
            "passed": parity.ok(cfg.atol),
        },
    )
    ref = read_run_ref(Path(args.checkpoint).with_name("run.json"))
    test_acc = float(read_json(args.eval_metrics)["test"]["accuracy"])
    card = ModelCard.for_model(
        args.onnx_out,
        mean=stats["mean"],
        std=stats["std"],
        test_accuracy=test_acc,
        opset=cfg.opset,
        input=INPUT_NAME,
        output=OUTPUT_NAME,
    )
    logged = log_to_run(
        ref,
        {
            "export/max_abs_diff": parity.max_abs_diff,
            "export/argmax_mismatches": parity.argmax_mismatches,
        },
        [Path(args.metrics)],
        artifact_path="export",
    )
    if logged:
        version = register_onnx(
            args.onnx_out,
            ref["tracking_uri"],
            ref["run_id"],
            mlflow_cfg.registered_model,
            test_acc,
            tags={"sha256": card.sha256, **run_tags(ref, ("dataset_sha256", "git_commit"))},
        )  # the field stage promotes, once the field sets are scored
        log.info("registered %s version %s", mlflow_cfg.registered_model, version)
    card.write_beside(args.onnx_out)


if __name__ == "__main__":
    run_stage(main)
