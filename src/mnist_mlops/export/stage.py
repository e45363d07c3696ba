"""The export stage as one call: checkpoint -> verified ONNX, its int8 copy, their cards,
and the model registered in MLflow.

    run_export_stage(ExportStagePaths(...), cfg, registered_model="mnist-mlp")

The steps run in the order that keeps a failure visible: the ONNX file is moved into place
only once parity holds, and the cards (each vouches for its file by its SHA-256) are
written last, after the model is registered. Registering never promotes: the field stage
decides whether the new version becomes the ``champion``, and which of its two files
serves. The int8 file is logged to the same run and named in the version's tags, so the
gate can fetch it for any registered version. A re-export of the same bytes from the same
run is that run's version again, not a new one (:mod:`mnist_mlops.export.register`);
metrics/export.json names the version (``registry``), so such a rerun writes it unchanged.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_mlops.core.config import ExportConfig
from mnist_mlops.core.fileio import read_json, write_json
from mnist_mlops.data.splits import Splits, load_splits
from mnist_mlops.export.quantize import Int8Parity, int8_parity, int8_path, quantize_onnx
from mnist_mlops.export.register import Registration, register_onnx
from mnist_mlops.export.to_onnx import INPUT_NAME, OUTPUT_NAME, Parity, export_and_verify
from mnist_mlops.inference.model_card import MODEL_FILE, ModelCard
from mnist_mlops.registry.versions import EXPORT_ARTIFACTS, INT8_ARTIFACT_TAG
from mnist_mlops.tracking.runs import log_to_run, read_run_ref, run_tags
from mnist_mlops.train.checkpoint import load_net

log = logging.getLogger(__name__)

INT8_ARTIFACTS = f"{EXPORT_ARTIFACTS}/int8"  # where the int8 model and its card go in the train run


@dataclass(frozen=True)
class ExportStagePaths:
    """What the stage reads and writes (each model's card is written beside it)."""

    checkpoint: Path  # run.json beside it names the MLflow run to log to
    processed_dir: Path  # the test split parity is checked on, and the pixel stats
    onnx: Path
    metrics: Path  # the parity numbers, also logged to the run
    eval_metrics: Path  # the evaluate stage's metrics: the card's test accuracy

    @property
    def run_ref(self) -> Path:
        return self.checkpoint.with_name("run.json")

    @property
    def int8(self) -> Path:
        """The int8 model beside the float one: ``model.onnx`` -> ``model.int8.onnx``."""
        return int8_path(self.onnx)


@dataclass(frozen=True)
class Int8Export:
    """The int8 model as written: its card (not yet on disk) and its parity with float."""

    card: ModelCard
    parity: Int8Parity


def run_export_stage(
    paths: ExportStagePaths, cfg: ExportConfig, registered_model: str
) -> ModelCard:
    """Export, verify, quantize, log and register; each card written beside its model."""
    net = load_net(paths.checkpoint)
    splits, stats = load_splits(paths.processed_dir)
    parity = export_and_verify(net, paths.onnx, splits.x_test, opset=cfg.opset, atol=cfg.atol)
    identity = dict(mean=stats["mean"], std=stats["std"], opset=cfg.opset,
                    input=INPUT_NAME, output=OUTPUT_NAME)  # fmt: skip
    int8 = _export_int8(paths, cfg, splits, identity)
    ref = read_run_ref(paths.run_ref)
    test_acc = float(read_json(paths.eval_metrics)["test"]["accuracy"])
    card = ModelCard.for_model(paths.onnx, test_accuracy=test_acc, **identity)
    registration = _log_and_register(paths, parity, int8, ref, card, registered_model)
    metrics = {**_parity_metrics(parity, cfg.atol), "int8": _int8_metrics(int8)}
    # Where the registry keeps this export; None when the run is gone (nothing registered).
    metrics["registry"] = registration.record() if registration else None
    write_json(paths.metrics, metrics)
    if registration is not None:
        log_to_run(ref, {}, [paths.metrics], artifact_path=EXPORT_ARTIFACTS)
    int8.card.write_beside(paths.int8)
    card.write_beside(paths.onnx)
    return card


def _export_int8(
    paths: ExportStagePaths, cfg: ExportConfig, splits: Splits, identity: dict[str, Any]
) -> Int8Export:
    """Quantize the verified float model and score the result against it on the test split."""
    how = quantize_onnx(paths.onnx, paths.int8, cfg.quantize, splits.x_train)
    parity = int8_parity(paths.onnx, paths.int8, splits.x_test, splits.y_test)
    card = ModelCard.for_model(
        paths.int8,
        test_accuracy=parity.test_accuracy,  # its own, through ONNX Runtime
        precision="int8",
        quantization=how,
        **identity,
    )
    log.info(
        "int8 (%s): agrees with float on %d of %d test images, max |dp| %.4f",
        cfg.quantize.method,
        parity.n_images - parity.mismatches,
        parity.n_images,
        parity.max_prob_diff,
    )
    return Int8Export(card, parity)


def _parity_metrics(parity: Parity, atol: float) -> dict[str, float | int | bool]:
    return {
        "n_images": parity.n_images,
        "max_abs_diff": parity.max_abs_diff,
        "argmax_mismatches": parity.argmax_mismatches,
        "atol": atol,
        "passed": parity.ok(atol),
    }


def _int8_metrics(int8: Int8Export) -> dict[str, Any]:
    how = int8.card.quantization
    return {
        **asdict(int8.parity),
        "method": how["method"],
        "preprocess": how["preprocess"],
        "optimize": how["optimize"],
        "sha256": int8.card.sha256,
    }


def _log_and_register(
    paths: ExportStagePaths,
    parity: Parity,
    int8: Int8Export,
    ref: dict[str, str],
    card: ModelCard,
    registered_model: str,
) -> Registration | None:
    """Parity, both cards and the int8 model into the train stage's run, and the float model
    registered from it with the int8 file named in its tags (the run's version of these
    bytes when it has one: then its int8 tags name the file just logged); skipped (with a
    warning from :func:`log_to_run`, None) when that run is gone from the store."""
    logged = log_to_run(
        ref,
        {
            "export/max_abs_diff": parity.max_abs_diff,
            "export/argmax_mismatches": parity.argmax_mismatches,
            "export/int8_agreement": int8.parity.agreement,
            "export/int8_max_prob_diff": int8.parity.max_prob_diff,
            "export/int8_test_accuracy": int8.parity.test_accuracy,
        },
        [],
    )
    if not logged:
        return None
    with tempfile.TemporaryDirectory(prefix="cards-") as tmp:
        # The cards are logged from a temp folder: beside the models they are written last.
        # The float card is always export/model.json (registry.versions.CARD_ARTIFACT):
        # a version without it cannot be promoted.
        logged_card = int8.card.write_beside(Path(tmp) / paths.int8.name)
        log_to_run(ref, {}, [paths.int8, logged_card], artifact_path=INT8_ARTIFACTS)
        float_card = card.write_beside(Path(tmp) / MODEL_FILE)
        log_to_run(ref, {}, [float_card], artifact_path=EXPORT_ARTIFACTS)
    registration = register_onnx(
        paths.onnx,
        ref["tracking_uri"],
        ref["run_id"],
        registered_model,
        card.test_accuracy,
        tags={
            "int8_sha256": int8.card.sha256,
            INT8_ARTIFACT_TAG: f"{INT8_ARTIFACTS}/{paths.int8.name}",
            **run_tags(ref, ("dataset_sha256", "git_commit")),
        },
    )
    log.info("%s", registration.line())
    return registration
