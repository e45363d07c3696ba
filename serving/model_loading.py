"""Find the model the service should run, check it against its card, open it once.

Serving-side only (no build-time imports). :func:`model_source` says what the service is
pointed at, the first of:

1. ``MNIST_MODEL_PATH``: one file, an ``.onnx`` or a ``served.json`` (no following);
2. ``MNIST_MODEL_URI`` (``models:/mnist-mlp@champion``): the registry at
   ``MLFLOW_TRACKING_URI``, resolved and fetched hash-checked, then followed
   (:mod:`serving.model_follow`);
3. ``MNIST_MODEL_TAG``, the exact model a built Bento was packaged with (its image sets
   it; ``bentoml serve`` of the Bento reads it from its ``bento.yaml``);
4. ``models/champion/served.json``, what ``dvc repro`` materialises of the registry's
   champion (:data:`DEFAULT_CHOICE_PATH`);

else one line naming the fix: "the last file trained" (``models/model.onnx``) is never
served by accident. :func:`load_model` verifies the file's SHA-256 against its card
(:class:`~mnist_mlops.inference.model_card.ModelCard`) and opens an ONNX Runtime session;
the :class:`LoadedModel` says which version it is and where it came from, as the start-up
log line, ``/readyz`` and every answer report it::

    MNIST_MODEL_URI=models:/mnist-mlp@champion MLFLOW_TRACKING_URI=http://mlflow:5000 \
        bentoml serve serving.service:MnistClassifier
    MNIST_MODEL_PATH=models/model.onnx bentoml serve ...  # one file, explicitly
"""

from __future__ import annotations

import functools
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
from mnist_mlops.monitoring.records import ModelTag

logger = logging.getLogger(__name__)
DEFAULT_CHOICE_PATH = f"models/champion/{CHOICE_NAME}"  # `dvc repro`'s champion stage
DEFAULT_PATHS = (DEFAULT_CHOICE_PATH,)
MODEL_URI_ENV = "MNIST_MODEL_URI"
BENTO_MANIFEST = "bento.yaml"  # a built Bento's, beside its src/ (serving/ is in src/)
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
ROLES = ("champion", "challenger")  # which alias a model answers for
FIX = (
    f"set {MODEL_URI_ENV}=models:/{STORE_NAME}@champion (with {TRACKING_URI_ENV}), run "
    f"`dvc repro champion` (it writes {DEFAULT_CHOICE_PATH}), or set {MODEL_PATH_ENV} to a "
    "served.json or model.onnx"
)


class ModelLoadError(UserError):
    """The model file or its card is missing, or they do not belong together."""


@dataclass(frozen=True)
class ModelSource:
    """What the service was pointed at, and how: the start-up log names both."""

    path: Path  # an .onnx, or a served.json standing for the artifact it chose; for a
    # registry source, where its fetched served.json will be (see serving.model_follow)
    origin: str  # e.g. "MNIST_MODEL_PATH", "the checkout", "the model store (mnist-mlp:...)"
    uri: str | None = None  # a registry source's models:/ URI: followed


@dataclass(frozen=True)
class LoadedModel:
    """An ONNX Runtime session, what its card says about it, and where it came from.

    Immutable: a follower swaps in a new one whole, and a request that read it once
    answers and logs with the same model from start to end.
    """

    session: ort.InferenceSession
    card: ModelCard
    source: str = ""  # "models:/mnist-mlp@champion v3", or the file it was loaded from
    role: str = "champion"  # one of ROLES: the alias it answers for
    registry_version: str | None = None  # the registry's version number, when from there

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def precision(self) -> str:
        """What the weights are computed in (the card's ``precision``): answers report it."""
        return self.card.precision

    def identity(self) -> dict[str, str]:
        """Which model this is and where it came from, as answers and ``/readyz`` name it."""
        return {
            "model_version": self.version,
            "model_precision": self.precision,
            "model_role": self.role,
            "model_source": self.source,
        }

    @functools.cached_property
    def tag(self) -> ModelTag:
        """The model as its inference-log records name it (made once: every answer logs it)."""
        return ModelTag(self.version, self.card.sha256, self.role, self.registry_version)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (N, 28, 28) raw pixels -> float64 (N, 10) softmax probabilities."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 28, 28)
        (logits,) = self.session.run([self.card.output], {self.card.input: batch})
        return softmax(logits)


def model_source(defaults: Sequence[str | os.PathLike[str]] = DEFAULT_PATHS) -> ModelSource:
    """What the service is pointed at (the order is the module docstring's); a
    :class:`ModelLoadError` naming the fix when nothing is."""
    explicit = os.environ.get(MODEL_PATH_ENV)
    if explicit:
        return ModelSource(Path(explicit), MODEL_PATH_ENV)
    uri = os.environ.get(MODEL_URI_ENV)
    if uri:
        return ModelSource(Path(CHOICE_NAME), MODEL_URI_ENV, uri=uri)
    tag = packaged_tag()
    if not tag:
        for default in defaults:
            if Path(default).is_file():
                return ModelSource(Path(default), "the checkout")
        raise ModelLoadError(f"no model to serve: none of {', '.join(map(str, defaults))} "
                             f"exists; {FIX}")  # fmt: skip
    folder = packaged_model_folder()
    assert folder is not None  # the tag is set
    return ModelSource(folder / MODEL_FILE, f"the model store ({tag})")


def packaged_tag() -> str | None:
    """The model store tag a built Bento was packaged with: ``MNIST_MODEL_TAG`` (set in its
    image), else the same env entry of the ``bento.yaml`` this code runs from. BentoML sets
    a Bento's ``envs`` only inside its container; ``bentoml serve mnist_classifier:TAG``
    runs the Bento's copy of this module without them, and must still serve its own model
    rather than whatever else the model store holds. None outside a Bento."""
    tag = os.environ.get(MODEL_TAG_ENV)
    if tag:
        return tag
    manifest = Path(__file__).resolve().parents[2] / BENTO_MANIFEST
    if not manifest.is_file():
        return None
    import yaml

    envs = (yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}).get("envs") or []
    return next((e.get("value") for e in envs if e.get("name") == MODEL_TAG_ENV), None)


def packaged_model_folder() -> Path | None:
    """Inside a built Bento (see :func:`packaged_tag`): the model store entry packaged with
    it (the model, its card, the smoke set); else None."""
    tag = packaged_tag()
    if not tag:
        return None
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(tag).path)
    except NotFound:
        raise ModelLoadError(
            f"model {tag} ({MODEL_TAG_ENV}) is not in the BentoML model store; "
            "rebuild the Bento (`dvc repro package`) or unset it"
        ) from None


def resolve_model_path(defaults: Sequence[str | os.PathLike[str]] = DEFAULT_PATHS) -> Path:
    """The ``.onnx`` the service runs (see :func:`model_source`; a ``served.json`` resolved
    to the artifact it chose, its card's SHA-256 checked against the choice)."""
    return _artifact(model_source(defaults).path)


def _artifact(path: Path) -> Path:
    try:
        return resolve_artifact(path)
    except UserError as exc:
        raise ModelLoadError(str(exc)) from None


def load_model(path: str | os.PathLike[str], **origin: str | None) -> LoadedModel:
    """Open ``path`` after checking its SHA-256 against the card beside it; ``origin``:
    :class:`LoadedModel`'s ``source``, ``role`` and ``registry_version`` (the source
    defaults to ``path``)."""
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
    origin.setdefault("source", str(model_path))
    return LoadedModel(session=inference_session(model_path), card=card, **origin)  # type: ignore[arg-type]


def load_file_model(source: ModelSource) -> LoadedModel:
    """The model a file source points at (see :func:`model_source`), resolved, checked,
    and named in the log: which artifact, its precision and version, and from where."""
    path = _artifact(source.path)
    model = load_model(path, source=str(source.path))
    announce(model, path.name, f"{source.path}, set by {source.origin}")
    return model


def announce(model: LoadedModel, what: str, where: str) -> None:
    """The one line an operator needs when a model starts serving."""
    # BentoML's server logging shows only warnings from loggers outside its own unless
    # they say otherwise.
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.info("Serving %s (%s, version %s) as %s from %s",
                what, model.precision, model.version, model.role, where)  # fmt: skip
