"""Which artifact of one export serves: the quantized one only when it loses nowhere.

An int8 model is a third of the float one's size and faster, but quantization can cost
accuracy on exactly the images users send (a blurred photo, a thin pen) while MNIST test
barely moves. So both artifacts are scored on the same images, set by set, and int8 serves
only when on no set it is lower than float32 by more than sampling noise
(:func:`mnist_mlops.gate.decide.noise_tolerance`, ``field.gate_z``)::

    choice = choose_served(float32, int8, z=2.0)  # -> ServingChoice, with the reason
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_mlops.evaluation.fieldscore import SetScore
from mnist_mlops.gate.decide import noise_tolerance
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.serving_choice import ServingChoice


@dataclass(frozen=True)
class ScoredArtifact:
    """One artifact of the export, its card, and its scores on every set (``test`` too)."""

    path: Path
    card: ModelCard
    scores: dict[str, SetScore]

    @property
    def accuracies(self) -> dict[str, float]:
        return {name: s.accuracy for name, s in self.scores.items()}


@dataclass(frozen=True)
class Loss:
    """A set on which the candidate is lower than the float model beyond noise."""

    name: str
    float32: float
    candidate: float
    tolerance: float

    def __str__(self) -> str:
        return (
            f"{self.name} {self.candidate:.4f} vs {self.float32:.4f} "
            f"(drop {self.float32 - self.candidate:.4f} > tolerance {self.tolerance:.4f})"
        )


def losses(float32: ScoredArtifact, candidate: ScoredArtifact, z: float) -> list[Loss]:
    """Every set where ``candidate`` is lower than ``float32`` by more than the noise
    tolerance at the float model's accuracy on that many images."""
    found = []
    for name, score in float32.scores.items():
        tolerance = noise_tolerance(score.accuracy, len(score.labels), z)
        theirs = candidate.scores[name].accuracy
        if theirs < score.accuracy - tolerance:
            found.append(Loss(name, score.accuracy, theirs, tolerance))
    return found


def choose_served(
    float32: ScoredArtifact, candidate: ScoredArtifact | None, z: float, absent: str = ""
) -> ServingChoice:
    """The artifact to serve and why: ``candidate`` (the quantized one) when it is within
    noise of ``float32`` on every set, else ``float32``; ``absent`` says why there is no
    candidate when it is None."""
    if candidate is None:
        return _serve(float32, absent or "no quantized artifact to judge; float32 serves")
    lost = losses(float32, candidate, z)
    name = candidate.card.precision
    if lost:
        return _serve(
            float32, f"{name} refused, lower beyond noise on: {'; '.join(map(str, lost))}"
        )
    drops = {k: float32.accuracies[k] - a for k, a in candidate.accuracies.items()}
    worst = max(drops, key=drops.__getitem__)
    return _serve(
        candidate,
        f"{name} within noise of float32 on every set ({', '.join(candidate.scores)}); "
        f"largest drop {worst} {drops[worst]:.4f}",
    )


def _serve(artifact: ScoredArtifact, reason: str) -> ServingChoice:
    return ServingChoice(
        artifact=artifact.path.name,
        precision=artifact.card.precision,
        sha256=artifact.card.sha256,
        reason=reason,
    )
