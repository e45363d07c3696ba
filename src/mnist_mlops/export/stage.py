"""The export stage as one call: checkpoint -> verified ONNX, its card, and the model
registered in MLflow.

    run_export_stage(ExportStagePaths(...), cfg, registered_model="mnist-mlp")

The steps run in the order that keeps a failure visible: the ONNX file is moved into place
only once parity holds, and the card (which vouches for the file by its SHA-256) is written
last, after the model is registered. Registering never promotes: the field stage decides
whether the new version becomes the ``champion``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mnist_mlops.core.config import ExportConfig
from mnist_mlops.core.fileio import read_json, write_json
from mnist_mlops.data.splits import load_splits
from mnist_mlops.export.to_onnx import INPUT_NAME, OUTPUT_NAME, Parity, export_and_verify
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.tracking.registry import register_onnx
from mnist_mlops.tracking.runs import log_to_run, read_run_ref, run_tags
from mnist_mlops.train.checkpoint import load_net

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportStagePaths:
    """What the stage reads and writes (the card is written beside ``onnx``)."""

    checkpoint: Path  # run.json beside it names the MLflow run to log to
    processed_dir: Path  # the test split parity is checked on, and the pixel stats
    onnx: Path
    metrics: Path  # the parity numbers, also logged to the run
    eval_metrics: Path  # the evaluate stage's metrics: the card's test accuracy

    @property
    def run_ref(self) -> Path:
        return self.checkpoint.with_name("run.json")


def run_export_stage(
    paths: ExportStagePaths, cfg: ExportConfig, registered_model: str
) -> ModelCard:
    """Export, verify, log and register; the card written beside the model."""
    net = load_net(paths.checkpoint)
    splits, stats = load_splits(paths.processed_dir)
    parity = export_and_verify(net, paths.onnx, splits.x_test, opset=cfg.opset, atol=cfg.atol)
    write_json(paths.metrics, _parity_metrics(parity, cfg.atol))
    ref = read_run_ref(paths.run_ref)
    test_acc = float(read_json(paths.eval_metrics)["test"]["accuracy"])
    card = ModelCard.for_model(
        paths.onnx,
        mean=stats["mean"],
        std=stats["std"],
        test_accuracy=test_acc,
        opset=cfg.opset,
        input=INPUT_NAME,
        output=OUTPUT_NAME,
    )
    _log_and_register(paths, parity, ref, card, registered_model)
    card.write_beside(paths.onnx)
    return card


def _parity_metrics(parity: Parity, atol: float) -> dict[str, float | int | bool]:
    return {
        "n_images": parity.n_images,
        "max_abs_diff": parity.max_abs_diff,
        "argmax_mismatches": parity.argmax_mismatches,
        "atol": atol,
        "passed": parity.ok(atol),
    }


def _log_and_register(
    paths: ExportStagePaths,
    parity: Parity,
    ref: dict[str, str],
    card: ModelCard,
    registered_model: str,
) -> None:
    """Parity into the train stage's run, and the model registered from it; skipped (with
    a warning from :func:`log_to_run`) when that run is gone from the store."""
    logged = log_to_run(
        ref,
        {
            "export/max_abs_diff": parity.max_abs_diff,
            "export/argmax_mismatches": parity.argmax_mismatches,
        },
        [paths.metrics],
        artifact_path="export",
    )
    if not logged:
        return
    version = register_onnx(
        paths.onnx,
        ref["tracking_uri"],
        ref["run_id"],
        registered_model,
        card.test_accuracy,
        tags={"sha256": card.sha256, **run_tags(ref, ("dataset_sha256", "git_commit"))},
    )
    log.info("registered %s version %s", registered_model, version)
