"""The field stage as one call: each artifact of the export scored where users are, the one
to serve chosen, logged, and judged by the champion gate.

    outcome = run_field_stage(FieldStagePaths(...), cfg, registered_model="mnist-mlp")
    outcome.write("metrics/field.json", "models")  # the numbers, then served.json, last

The steps, in order: build the images once (the field sets, saved for the reference
stage; the corrections holdout; the MNIST test split as arrays), score the float model and
the quantized one on exactly those, choose the one to serve (:mod:`.choice`), plot the
served one's failures, log to the train stage's MLflow run, tag the registered version with
what it serves and run the champion gate on the served artifact's numbers. The gate judges
what will be served: a champion scored on other images is scored again through the
artifact it serves.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_mlops.core.config import FieldConfig
from mnist_mlops.core.errors import ChecksumError, DataFormatError
from mnist_mlops.core.fileio import write_json
from mnist_mlops.corrections.dataset import HOLDOUT_SET, load_part
from mnist_mlops.data.splits import load_splits
from mnist_mlops.evaluation.field_inputs import SetInputs, build_field_inputs, save_field_inputs
from mnist_mlops.evaluation.fieldscore import (
    SetScore,
    plot_failures,
    rescore,
    score_inputs,
    sets_fingerprint,
)
from mnist_mlops.gate.choice import ScoredArtifact, choose_served
from mnist_mlops.gate.decide import TEST_SET, gate_scores
from mnist_mlops.inference.model_card import ModelCard, card_path
from mnist_mlops.inference.serving_choice import ServingChoice
from mnist_mlops.registry.versions import (
    SERVED_PRECISION_TAG,
    SERVED_SHA_TAG,
    registered_version,
    tag_version,
)
from mnist_mlops.tracking.runs import log_to_run, read_run_ref

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldStagePaths:
    """What the stage reads and writes (served.json is the caller's, beside ``onnx``)."""

    onnx: Path  # the float model; its card and run.json beside it
    processed_dir: Path  # the test split the field sets are drawn from, and scored as arrays
    corrections: Path | None  # its holdout part is one more set, when there is one
    int8: Path | None  # the quantized candidate (its card beside it); None: float serves
    plots_dir: Path  # field_<set>.png, the served artifact's failures
    field_inputs: Path  # the sets' model inputs, for the reference stage

    @property
    def run_ref(self) -> Path:
        return self.onnx.with_name("run.json")


@dataclass(frozen=True)
class Images:
    """Every set the artifacts are compared on, preprocessed once."""

    sets: dict[str, SetInputs]  # field sets (with their images), the holdout, TEST_SET
    x_test: np.ndarray  # the split as loaded: part of the sets' fingerprint
    y_test: np.ndarray


@dataclass(frozen=True)
class FieldOutcome:
    """What the caller writes: metrics/field.json, then served.json."""

    summary: dict[str, Any]
    choice: ServingChoice  # its version is the registered one when tracked

    def write(self, metrics: str | Path, models_dir: str | Path) -> None:
        """metrics/field.json, then served.json in ``models_dir``: what serves is written
        last, once the numbers that chose it are."""
        write_json(metrics, self.summary)
        self.choice.write(Path(models_dir))


def run_field_stage(
    paths: FieldStagePaths, cfg: FieldConfig, registered_model: str
) -> FieldOutcome:
    """Score, choose, log and gate; nothing written but the plots and the sets' inputs."""
    images = build_images(paths, cfg)
    float32 = score_artifact(paths.onnx, _float_card(paths.onnx), images)
    candidate, absent = _score_candidate(paths.int8, images)
    choice = choose_served(float32, candidate, cfg.gate_z, absent)
    log.info("serving %s: %s", choice.artifact, choice.reason)
    served = candidate if candidate and choice.sha256 == candidate.card.sha256 else float32
    plots = _plot_failures(images, served, paths.plots_dir)
    summary = _summary(served, choice, [a for a in (float32, candidate) if a is not None])
    ref = read_run_ref(paths.run_ref)
    uri = ref["tracking_uri"]
    version = None
    if log_to_run(ref, _run_metrics(served, float32, candidate), plots, "field"):
        version = registered_version(uri, registered_model, ref["run_id"], float32.card.sha256)
    if version is not None:
        tag_version(uri, registered_model, version, _served_tags(choice))
        summary["champion"] = _champion_gate(uri, registered_model, version, served, images, cfg)
    return FieldOutcome(summary, dataclasses.replace(choice, version=version))


def _champion_gate(
    uri: str,
    registered_model: str,
    version: str,
    served: ScoredArtifact,
    images: Images,
    cfg: FieldConfig,
) -> dict[str, Any]:
    """The champion gate on the served artifact's numbers; a champion scored on other
    images is scored again (through the file it serves) on these."""
    return gate_scores(
        uri,
        registered_model,
        version,
        served.scores,
        sets_sha256=sets_fingerprint(_field_scores(served), images.x_test, images.y_test),
        rescore=lambda other: _rescored(other, served),
        z=cfg.gate_z,
    )


def build_images(paths: FieldStagePaths, cfg: FieldConfig) -> Images:
    """The field sets (built in parallel and saved for the reference stage), the
    corrections holdout when there is one, and the MNIST test split."""
    splits, _ = load_splits(paths.processed_dir)
    sets = build_field_inputs(cfg.sets, splits.x_test, splits.y_test, cfg.n_per_set, cfg.seed)
    save_field_inputs(paths.field_inputs, sets)
    holdout = load_part(paths.corrections, "holdout") if paths.corrections else None
    if holdout is not None and len(holdout):
        sets[HOLDOUT_SET] = _arrays(holdout.x, holdout.y)
    sets[TEST_SET] = _arrays(splits.x_test, splits.y_test)
    return Images(sets, splits.x_test, splits.y_test)


def _arrays(x: np.ndarray, y: np.ndarray) -> SetInputs:
    """Images already 28 x 28 (the test split, the corrections): none refused."""
    return SetInputs(np.asarray(y, dtype=np.int64), x.astype(np.float32), np.ones(len(y), bool))


def score_artifact(path: Path, card: ModelCard, images: Images) -> ScoredArtifact:
    """``path`` in ONNX Runtime on every set of ``images``."""
    scores = {name: score_inputs(path, s.inputs, s.labels, s.ok) for name, s in images.sets.items()}
    for name, score in scores.items():
        log.info(
            "%s on %s: accuracy %.4f (n=%d)", path.name, name, score.accuracy, len(score.labels)
        )
    return ScoredArtifact(path, card, scores)


def _float_card(path: Path) -> ModelCard:
    card = ModelCard.read_beside(path)
    card.verify(path)
    return card


def _score_candidate(path: Path | None, images: Images) -> tuple[ScoredArtifact | None, str]:
    """The quantized artifact scored, or None and why there is none to judge (an export
    from before quantization, quantization switched off, a card that does not match)."""
    if path is None:
        return None, "no quantized artifact given to the field stage; float32 serves"
    if not path.is_file():
        return None, f"{path} not found (no quantized export); float32 serves"
    try:
        card = ModelCard.read_beside(path)
        card.verify(path)
    except (DataFormatError, ChecksumError) as exc:
        log.warning("%s is not judged: %s", path, exc)
        return None, f"{path} is not judged ({card_path(path).name}: {exc}); float32 serves"
    return score_artifact(path, card, images), ""


def _plot_failures(images: Images, served: ScoredArtifact, folder: Path) -> list[Path]:
    """A grid of the served artifact's misses for each field set drawn from images."""
    plots = []
    for name, s in images.sets.items():
        if s.blobs:
            plot = folder / f"field_{name}.png"
            plot_failures(s.blobs, served.scores[name], f"field set {name!r}", plot)
            plots.append(plot)
    return plots


def _field_scores(artifact: ScoredArtifact) -> dict[str, SetScore]:
    return {k: s for k, s in artifact.scores.items() if k != TEST_SET}


def _summary(
    served: ScoredArtifact, choice: ServingChoice, artifacts: list[ScoredArtifact]
) -> dict[str, Any]:
    """metrics/field.json: the served artifact's sets, the choice, every artifact's numbers."""
    sets = {
        name: {"accuracy": s.accuracy, "n": len(s.labels), "refused": s.refused}
        for name, s in _field_scores(served).items()
    }
    return {
        "sets": sets,
        "min_accuracy": min((s["accuracy"] for s in sets.values()), default=0.0),
        "served": {
            "artifact": choice.artifact,
            "precision": choice.precision,
            "reason": choice.reason,
        },
        "artifacts": {a.card.precision: a.accuracies for a in artifacts},
    }


def _run_metrics(
    served: ScoredArtifact, float32: ScoredArtifact, candidate: ScoredArtifact | None
) -> dict[str, float]:
    """``field/acc_<set>``: what serves; ``field/<precision>/acc_<set>``: each artifact."""
    metrics = {f"field/acc_{k}": s.accuracy for k, s in _field_scores(served).items()}
    for artifact in (float32, candidate):
        if artifact is not None:
            prefix = f"field/{artifact.card.precision}/acc_"
            metrics.update({prefix + k: a for k, a in artifact.accuracies.items()})
    return metrics


def _served_tags(choice: ServingChoice) -> dict[str, str]:
    return {
        "served_artifact": choice.artifact,
        SERVED_PRECISION_TAG: choice.precision,
        SERVED_SHA_TAG: choice.sha256,
        "served_reason": choice.reason,
    }


def _rescored(other: Path, served: ScoredArtifact) -> dict[str, float]:
    """Another model (the champion's served file) on exactly the images ``served`` saw."""
    return {name: rescore(other, score).accuracy for name, score in served.scores.items()}
