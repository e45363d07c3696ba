"""The int8 artifact serves only when it loses on no set beyond sampling noise; the reason
names every set it lost on and by how much, and a missing candidate serves float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_mlops.evaluation.fieldscore import SetScore
from mnist_mlops.gate.choice import ScoredArtifact, choose_served, losses
from mnist_mlops.gate.decide import noise_tolerance
from mnist_mlops.inference.model_card import ModelCard

N = 300  # images per set


def scored(precision: str, right: dict[str, int]) -> ScoredArtifact:
    """An artifact that gets ``right[set]`` of N images right on each set."""
    scores = {}
    for name, k in right.items():
        labels = np.zeros(N, dtype=np.int64)
        predictions = np.where(np.arange(N) < k, 0, 1)
        scores[name] = SetScore(labels, predictions, np.zeros((N, 28, 28), np.float32))
    card = ModelCard(sha256=precision[0] * 64, mean=0.1, std=0.3, precision=precision)
    name = "model.onnx" if precision == "float32" else "model.int8.onnx"
    return ScoredArtifact(Path("models") / name, card, scores)


FLOAT = scored("float32", {"test": 291, "photo": 270, "fonts": 240})


def test_within_noise_on_every_set_the_int8_artifact_serves():
    int8 = scored("int8", {"test": 290, "photo": 268, "fonts": 241})
    choice = choose_served(FLOAT, int8, z=2.0)
    assert (choice.artifact, choice.precision, choice.sha256) == (
        "model.int8.onnx",
        "int8",
        "i" * 64,
    )
    assert "within noise" in choice.reason and "photo" in choice.reason


def test_a_loss_beyond_noise_on_one_set_serves_float_and_names_that_set():
    tolerance = noise_tolerance(270 / N, N, 2.0)
    drop = int(tolerance * N) + 2  # just past the tolerance on photo, equal elsewhere
    int8 = scored("int8", {"test": 291, "photo": 270 - drop, "fonts": 240})
    [lost] = losses(FLOAT, int8, z=2.0)
    assert lost.name == "photo" and lost.tolerance == tolerance
    choice = choose_served(FLOAT, int8, z=2.0)
    assert (choice.artifact, choice.precision, choice.sha256) == ("model.onnx", "float32", "f" * 64)
    assert "int8 refused" in choice.reason and "photo" in choice.reason
    assert f"{(270 - drop) / N:.4f} vs {270 / N:.4f}" in choice.reason
    assert "fonts" not in choice.reason and "test" not in choice.reason
    # The same drop is noise to a gate that allows more.
    assert choose_served(FLOAT, int8, z=10.0).precision == "int8"


def test_a_strict_gate_refuses_any_drop():
    int8 = scored("int8", {"test": 290, "photo": 270, "fonts": 240})
    assert choose_served(FLOAT, int8, z=0.0).precision == "float32"


def test_no_candidate_serves_float_with_the_reason_given():
    choice = choose_served(FLOAT, None, z=2.0, absent="models/model.int8.onnx not found")
    assert choice.artifact == "model.onnx" and choice.reason == "models/model.int8.onnx not found"
    assert "float32 serves" in choose_served(FLOAT, None, z=2.0).reason
