"""Which model to score with: the gate's choice, a file path, or a registry URI.

``models/served.json`` (the gate's record of which artifact serves) scores with the
artifact it chose, int8 or float32, hash-checked as every server checks it; a path to
an ``.onnx`` scores with that file (``models/model.onnx``: float32); ``models:/mnist-mlp@champion``
(an alias) and ``models:/mnist-mlp/3`` (a version) name a registered model, downloaded
through MLflow. The model is read into memory once (a few MB), so every engine and every
Ray actor uses the very bytes whose SHA-256 the run records, with the precision its card
gives.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mnist_mlops.core.errors import ChecksumError, UserError
from mnist_mlops.core.locks import sqlite_path
from mnist_mlops.inference.model_card import ModelCard, card_path
from mnist_mlops.inference.serving_choice import is_choice, resolve_artifact

URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class Model:
    """The model's bytes and where they came from."""

    data: bytes
    ref: str  # what the user gave: a path or a models:/ URI
    version: str  # registry version, or the file's short SHA-256 (as model.json calls it)
    sha256: str
    precision: str | None = None  # float32 or int8, as the model's card says; None: no card


def load_model(ref: str, tracking_uri: str) -> Model:
    """Read the model at ``ref`` (a path or ``models:/`` URI); one-line error if it is not there."""
    if ref.startswith("models:/"):
        return _from_registry(ref, tracking_uri)
    path = resolve_artifact(ref) if is_choice(ref) else Path(ref)
    if not path.is_file():
        raise UserError(
            f"{path}: model file not found; run `dvc repro export` or give a models:/ URI"
        )
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    card = _card(path)
    if is_choice(ref) and card is not None and card.sha256 != sha:
        raise ChecksumError(
            f"{path} has SHA-256 {sha} but {card_path(path)} expects {card.sha256}; "
            "the model and its card come from different exports: re-run `dvc repro`"
        )
    return Model(data, ref, sha[:12], sha, card.precision if card else None)


def _card(path: Path) -> ModelCard | None:
    """The card beside ``path``, when there is one (a bare .onnx scores without it)."""
    return ModelCard.read_beside(path) if card_path(path).is_file() else None


def _from_registry(ref: str, tracking_uri: str) -> Model:
    match = URI.match(ref)
    if not match:
        raise UserError(f"{ref}: not a model URI; use models:/<name>@<alias> or models:/<name>/<n>")
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():  # MLflow would create an empty store there
        raise UserError(
            f"{ref}: no MLflow store at {db}; run the pipeline (dvc repro) to register a "
            "model, or set MLFLOW_TRACKING_URI to the team's tracking server"
        )
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    name, alias = match["name"], match["alias"]
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, match["version"])
        )
        with tempfile.TemporaryDirectory(prefix="mnist-score-model-") as tmp:
            folder = Path(download_artifacts(artifact_uri=found.source, dst_path=tmp))
            onnx = sorted(folder.rglob("*.onnx"))
            if not onnx:
                raise UserError(f"{ref}: version {found.version} has no .onnx file")
            data = _inline(onnx[0])
            card = _card(onnx[0])
    except MlflowException as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"{ref}: not found in the registry at {tracking_uri} ({reason}); "
            "check the name and alias, or set MLFLOW_TRACKING_URI"
        ) from None
    precision = card.precision if card else None
    return Model(data, ref, str(found.version), hashlib.sha256(data).hexdigest(), precision)


def _inline(path: Path) -> bytes:
    """The model at ``path`` as one self-contained buffer.

    MLflow stores a logged ONNX model's weights as external data beside the graph;
    a session built from bytes (as every engine and Ray actor does) cannot follow
    such references, so they are loaded back into the graph here.
    """
    import onnx

    return onnx.load(str(path), load_external_data=True).SerializeToString()
