"""Find the model the service should run, check it against its card, open it once.

Serving-side only (no build-time imports): :func:`resolve_model_path` says where
``model.onnx`` is, :func:`load_model` verifies its SHA-256 against ``model.json``
(:class:`~mnist_mlops.inference.model_card.ModelCard`) and opens an ONNX Runtime session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mnist_mlops.core.errors import UserError
from mnist_mlops.inference.model_card import (
    MODEL_FILE,
    MODEL_PATH_ENV,
    MODEL_TAG_ENV,
    STORE_NAME,
    ModelCard,
)
from mnist_mlops.inference.session import inference_session, softmax

DEFAULT_MODEL_PATH = "models/model.onnx"


class ModelLoadError(UserError):
    """The model file or its card is missing, or they do not belong together."""


@dataclass(frozen=True)
class LoadedModel:
    """An ONNX Runtime session plus what its card says about it."""

    session: ort.InferenceSession
    card: ModelCard

    @property
    def version(self) -> str:
        return self.card.version

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (N, 28, 28) raw pixels -> float64 (N, 10) softmax probabilities."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 28, 28)
        (logits,) = self.session.run([self.card.output], {self.card.input: batch})
        return softmax(logits)


def resolve_model_path(default: str | os.PathLike[str] = DEFAULT_MODEL_PATH) -> Path:
    """Where the service finds ``model.onnx`` (``model.json`` beside it).

    In order: ``MNIST_MODEL_PATH`` (tests, an explicit file); ``MNIST_MODEL_TAG``, set
    inside a built Bento to the exact model packaged with it; ``default`` when it exists
    (a checkout after ``dvc repro``); else the store's ``mnist-mlp:latest``.
    """
    explicit = os.environ.get(MODEL_PATH_ENV)
    if explicit:
        return Path(explicit)
    tag = os.environ.get(MODEL_TAG_ENV)
    if not tag:
        if Path(default).is_file():
            return Path(default)
        tag = f"{STORE_NAME}:latest"
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(tag).path_of(MODEL_FILE))
    except NotFound:
        raise ModelLoadError(
            f"model {tag} is not in the BentoML model store and {default} does not exist; "
            f"run `dvc repro` or set {MODEL_PATH_ENV}=path/to/model.onnx"
        ) from None


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Open ``path`` after checking its SHA-256 against the card beside it."""
    model_path = Path(path)
    if not model_path.is_file():
        raise ModelLoadError(
            f"{model_path} not found; run `dvc repro export` or set {MODEL_PATH_ENV} "
            "to an exported model.onnx (with model.json beside it)"
        )
    try:
        card = ModelCard.read_beside(model_path)
        card.verify(model_path)
    except UserError as exc:
        raise ModelLoadError(str(exc)) from exc
    return LoadedModel(session=inference_session(model_path), card=card)


def load_configured_model() -> tuple[Path, LoadedModel]:
    """The model the environment points at (see :func:`resolve_model_path`), checked."""
    path = resolve_model_path()
    return path, load_model(path)
