"""The smoke set a followed version must answer before it serves (serving.model_follow).

``smoke.npz`` holds MNIST test digits with their labels (``x`` uint8 (N, 28, 28), ``y``
int64), written by the champion stage beside the served model; a version whose accuracy on
it is below ``MNIST_SMOKE_MIN_ACCURACY`` is refused, so a model that loads and hashes right
but answers wrong (a broken export, the wrong preprocessing) never reaches users.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_mlops.core.errors import UserError
from serving.model_loading import LoadedModel


class Refused(UserError):
    """A version failed a check (fetch, hash, ONNX Runtime, smoke set): it does not serve."""


@dataclass(frozen=True)
class SmokeSet:
    """Images with known answers (``smoke.npz``: ``x`` uint8 (N, 28, 28), ``y`` int64) and
    the share a version must answer right before it serves."""

    x: np.ndarray
    y: np.ndarray
    min_accuracy: float

    @classmethod
    def read(cls, path: Path, min_accuracy: float) -> SmokeSet:
        """The smoke set at ``path``; one line naming the fix when it is missing or bad."""
        try:
            with np.load(path, allow_pickle=False) as data:
                x, y = data["x"], data["y"]
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(
                f"smoke set {path} unusable ({exc}); run `dvc repro champion` (it writes "
                "models/champion/smoke.npz) or set MNIST_SMOKE_PATH"
            ) from None
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y) or len(y) == 0:
            raise UserError(f"smoke set {path} is not x (N, 28, 28) with N labels y; "
                            "run `dvc repro champion` again")  # fmt: skip
        return cls(x, y.astype(np.int64), min_accuracy)

    def check(self, model: LoadedModel) -> float:
        """``model``'s accuracy on the set; :class:`Refused` below ``min_accuracy``."""
        digits = model.probabilities(self.x.astype(np.float32)).argmax(axis=1)
        accuracy = float((digits == self.y).mean())
        if accuracy < self.min_accuracy:
            raise Refused(
                f"answers {accuracy:.1%} of the {len(self.y)} smoke-set digits right, "
                f"below the {self.min_accuracy:.1%} required (MNIST_SMOKE_MIN_ACCURACY)"
            )
        return accuracy
