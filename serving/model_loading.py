"""Find the model the service should run, check it against its card, open it once.

Serving-side only (no build-time imports). :func:`model_source` says what the service is
pointed at: the gate's choice ``models/served.json`` in a checkout (the artifact the gate
scored and chose, int8 or float32), a model file named by ``MNIST_MODEL_PATH``, or the
model packaged into a Bento. :func:`resolve_model_path` turns that into one ``.onnx``
(through :func:`~mnist_mlops.inference.serving_choice.resolve_artifact`, which checks the
choice against the artifact's card), and :func:`load_model` verifies the file's SHA-256
against its card (:class:`~mnist_mlops.inference.model_card.ModelCard`) and opens an ONNX
Runtime session. Serving float instead of the gated artifact is one setting::

    MNIST_MODEL_PATH=models/model.onnx bentoml serve serving.service:MnistClassifier
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
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
from mnist_mlops.inference.serving_choice import CHOICE_NAME, resolve_artifact
from mnist_mlops.inference.session import inference_session, softmax

logger = logging.getLogger(__name__)
DEFAULT_CHOICE_PATH = f"models/{CHOICE_NAME}"  # the gate's decision, after `dvc repro`
DEFAULT_MODEL_PATH = "models/model.onnx"  # a checkout exported but not yet gated
DEFAULT_PATHS = (DEFAULT_CHOICE_PATH, DEFAULT_MODEL_PATH)  # the first that exists serves


class ModelLoadError(UserError):
    """The model file or its card is missing, or they do not belong together."""


@dataclass(frozen=True)
class ModelSource:
    """What the service was pointed at, and how: the start-up log names both."""

    path: Path  # an .onnx, or a served.json standing for the artifact it chose
    origin: str  # e.g. "MNIST_MODEL_PATH", "the checkout", "the model store (mnist-mlp:...)"


@dataclass(frozen=True)
class LoadedModel:
    """An ONNX Runtime session plus what its card says about it."""

    session: ort.InferenceSession
    card: ModelCard

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def precision(self) -> str:
        """What the weights are computed in (the card's ``precision``): answers report it."""
        return self.card.precision

    def identity(self) -> dict[str, str]:
        """Which model this is, as answers and ``/readyz`` name it."""
        return {"model_version": self.version, "model_precision": self.precision}

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (N, 28, 28) raw pixels -> float64 (N, 10) softmax probabilities."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 28, 28)
        (logits,) = self.session.run([self.card.output], {self.card.input: batch})
        return softmax(logits)


def model_source(defaults: Sequence[str | os.PathLike[str]] = DEFAULT_PATHS) -> ModelSource:
    """What the service is pointed at, in order:

    ``MNIST_MODEL_PATH`` (an ``.onnx`` or a ``served.json``: the one setting that serves
    float instead); ``MNIST_MODEL_TAG``, set inside a built Bento to the exact model
    packaged with it; the first of ``defaults`` that exists (a checkout after ``dvc repro``:
    the gate's ``served.json``, else ``model.onnx``); else the store's ``mnist-mlp:latest``.
    """
    explicit = os.environ.get(MODEL_PATH_ENV)
    if explicit:
        return ModelSource(Path(explicit), MODEL_PATH_ENV)
    tag = os.environ.get(MODEL_TAG_ENV)
    if not tag:
        for default in defaults:
            if Path(default).is_file():
                return ModelSource(Path(default), "the checkout")
        tag = f"{STORE_NAME}:latest"
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        entry = bentoml.models.get(tag)
    except NotFound:
        raise ModelLoadError(
            f"model {tag} is not in the BentoML model store and none of "
            f"{', '.join(map(str, defaults))} exists; run `dvc repro` or set "
            f"{MODEL_PATH_ENV}=models/{CHOICE_NAME} (or a model.onnx)"
        ) from None
    return ModelSource(Path(entry.path_of(MODEL_FILE)), f"the model store ({entry.tag})")


def resolve_model_path(defaults: Sequence[str | os.PathLike[str]] = DEFAULT_PATHS) -> Path:
    """The ``.onnx`` the service runs (see :func:`model_source`; a ``served.json`` resolved
    to the artifact it chose, its card's SHA-256 checked against the choice)."""
    return _artifact(model_source(defaults).path)


def _artifact(path: Path) -> Path:
    try:
        return resolve_artifact(path)
    except UserError as exc:
        raise ModelLoadError(str(exc)) from None


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Open ``path`` after checking its SHA-256 against the card beside it."""
    model_path = Path(path)
    if not model_path.is_file():
        raise ModelLoadError(
            f"{model_path} not found; run `dvc repro export` or set {MODEL_PATH_ENV} "
            f"to models/{CHOICE_NAME} or an exported model.onnx (with its card beside it)"
        )
    try:
        card = ModelCard.read_beside(model_path)
        card.verify(model_path)
    except UserError as exc:
        raise ModelLoadError(str(exc)) from None
    return LoadedModel(session=inference_session(model_path), card=card)


def load_configured_model() -> LoadedModel:
    """The model the environment points at (see :func:`model_source`), resolved, checked,
    and named in the log: which artifact, its precision and version, and from where."""
    source = model_source()
    path = _artifact(source.path)
    model = load_model(path)
    # The one line an operator needs from start-up; BentoML's server logging shows only
    # warnings from loggers outside its own unless they say otherwise.
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.info(
        "Serving %s (%s, version %s) from %s, set by %s",
        path.name,
        model.precision,
        model.version,
        source.path,
        source.origin,
    )
    return model
