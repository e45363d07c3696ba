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
from mnist_mlops.registry.deployment import SMOKE_NAME, read_smoke
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
        """The smoke set at ``path`` (the champion stage's file, read by its one reader);
        one line naming the fix when it is missing or bad."""
        try:
            x, y = read_smoke(path)
        except UserError as exc:
            raise UserError(f"{exc}, or set MNIST_SMOKE_PATH") from None
        if len(y) == 0:
            raise UserError(f"smoke set {path} is empty; run `dvc repro champion` again")
        return cls(x, y, min_accuracy)

    @staticmethod
    def default_path(configured: Path, store_entry: Path | None) -> Path:
        """``configured`` (MNIST_SMOKE_PATH, default ``models/champion/smoke.npz``), unless
        it is absent and the service runs a Bento: then the set packaged with its model."""
        packaged = store_entry / SMOKE_NAME if store_entry is not None else None
        if not configured.is_file() and packaged is not None and packaged.is_file():
            return packaged
        return configured

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
