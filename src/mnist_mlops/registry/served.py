"""The one way everything resolves a registered model to the file it serves.

    served = resolve(uri, "models:/mnist-mlp@champion")  # one registry call
    fetch(uri, served, Path("models/champion"))  # -> models/champion/served.json

A version serves the artifact the field stage's gate chose for it (its ``served_*``
tags): the registered float model, or the int8 file its run logged. ``fetch`` downloads
that file and its card (logged by the export stage), checks that the file, the card and
the registry's tag name the same SHA-256, and writes ``served.json``
(:class:`~mnist_mlops.inference.serving_choice.ServingChoice`) beside them, so every
server loads it the way it loads a local export. Every failure is a
:class:`RegistryError`: one line naming the problem and the fix, never a wrong model.

A registry that does not answer fails within seconds: MLflow's HTTP client retries for
minutes by default, so its retry settings are lowered while this module talks to the
registry (unless the environment sets them), and a ``sqlite:///`` path that does not
exist is refused rather than created empty.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.core.locks import sqlite_path
from mnist_mlops.inference.model_card import MODEL_FILE, VERSION_HEX, ModelCard, card_path
from mnist_mlops.inference.serving_choice import ServingChoice
from mnist_mlops.registry.connect import (
    RegistryError,  # what every failure here raises
    access_refused,
)
from mnist_mlops.registry.versions import CARD_ARTIFACT as FLOAT_CARD_ARTIFACT
from mnist_mlops.registry.versions import INT8_ARTIFACT_TAG, SERVED_PRECISION_TAG, SERVED_SHA_TAG
from mnist_mlops.registry.versions import REASON_TAG as GATE_REASON_TAG
from mnist_mlops.registry.versions import SHA_TAG as FLOAT_SHA_TAG

SERVED_REASON_TAG = "served_reason"  # the field stage's: why this artifact of the export
PROMOTE_FIX = (
    "run `dvc repro` (the field stage's gate sets it) or "
    "`python -m pipeline.registry promote VERSION`"
)
OTHER_FIX = (
    "promote or roll back to another version "
    "(`python -m pipeline.registry promote VERSION` or `rollback`)"
)
# MLflow's client settings while this module talks to the registry, where the environment
# does not set them: fail fast against an unreachable server (MLflow's defaults: 7 retries
# with a backoff of 2 s doubling, 120 s a request; here no retry: a follower tries again at
# its next poll, and urllib3 warns about each retry in what must be one line), and no
# download progress bars.
CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@dataclass(frozen=True)
class ServedVersion:
    """A registered version and the artifact it serves, as the registry says."""

    model_name: str
    version: str
    alias: str | None
    uri: str  # e.g. "models:/mnist-mlp@champion" or "models:/mnist-mlp/3"
    precision: str  # "float32" | "int8": the artifact the gate chose for it
    sha256: str  # of that artifact (its card's); checked after download
    reason: str  # the gate's word (gate_reason tag) or the promotion's

    def describe(self) -> str:
        """``mnist-mlp v3 (int8, 1a2b3c4d5e6f) from models:/mnist-mlp@champion``."""
        short = self.sha256[:VERSION_HEX]
        return f"{self.model_name} v{self.version} ({self.precision}, {short}) from {self.uri}"


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/N`` -> (name, None, N)."""
    rest = model_uri.removeprefix("models:/")
    name, at, alias = rest.partition("@")
    if at and name and alias and "/" not in rest:
        return name, alias, None
    name, slash, number = rest.partition("/")
    if rest != model_uri and slash and name and number.isdigit():
        return name, None, number
    raise RegistryError(
        f"{model_uri!r} is not a registry model URI; write models:/NAME@ALIAS "
        "(e.g. models:/mnist-mlp@champion) or models:/NAME/VERSION"
    )


def resolve(tracking_uri: str, model_uri: str) -> ServedVersion:
    """The version ``model_uri`` names now and the artifact it serves (one registry call)."""
    from mlflow.exceptions import MlflowException

    name, alias, number = parse_model_uri(model_uri)
    with _fail_fast(tracking_uri):
        client = _client(tracking_uri)
        try:
            if alias is not None:
                found = client.get_model_version_by_alias(name, alias)
            else:
                found = client.get_model_version(name, number)
        except MlflowException as exc:
            raise _lookup_error(exc, tracking_uri, model_uri, name, alias) from None
    return _served(found, model_uri, alias)


def fetch(tracking_uri: str, served: ServedVersion, folder: str | os.PathLike[str]) -> Path:
    """Download ``served``'s artifact and card into ``folder``, verify them, write
    ``served.json`` there last; its path."""
    from mlflow.exceptions import MlflowException

    folder = Path(folder)
    with _fail_fast(tracking_uri), tempfile.TemporaryDirectory(prefix="fetch-") as tmp:
        client = _client(tracking_uri)
        try:
            found = client.get_model_version(served.model_name, served.version)
        except MlflowException as exc:
            raise _lookup_error(exc, tracking_uri, served.uri, served.model_name, None) from None
        tags = dict(found.tags)
        name, model, card = _download(tracking_uri, served, found, Path(tmp))
        verified = _verify(served, model, card)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model, folder / name)
        shutil.copyfile(card, card_path(folder / name))
    reason = tags.get(SERVED_REASON_TAG) or f"the registry's {served.precision} artifact"
    choice = ServingChoice(name, verified.precision, verified.sha256, reason, served.version)
    return choice.write(folder)


def _served(found: Any, model_uri: str, alias: str | None) -> ServedVersion:
    """What a registry record says it serves; a version with no hash to check is refused."""
    tags = dict(found.tags)
    precision = tags.get(SERVED_PRECISION_TAG, "float32")  # untagged: gated before int8
    sha = tags.get(SERVED_SHA_TAG) or (tags.get(FLOAT_SHA_TAG) if precision == "float32" else "")
    where = f"{found.name} v{found.version} ({model_uri})"
    if not sha:
        raise RegistryError(
            f"{where} has no {SERVED_SHA_TAG} or {FLOAT_SHA_TAG} tag, so its file cannot be "
            f"hash-checked; re-run the export and field stages (`dvc repro`) or {OTHER_FIX}"
        )
    # Why it holds the alias: the recorded move (the gate's, a person's promote, a rollback:
    # registry.aliases tags it), else the gate's word on the version.
    moved = tags.get(f"became_{alias}") if alias else None
    reason = moved or tags.get(GATE_REASON_TAG) or "no gate decision recorded on this version"
    return ServedVersion(found.name, str(found.version), alias, model_uri, precision, sha, reason)


def _download(
    tracking_uri: str, served: ServedVersion, found: Any, tmp: Path
) -> tuple[str, Path, Path]:
    """(file name to serve it under, the downloaded artifact, its downloaded card)."""
    where = f"{served.model_name} v{served.version}"
    run_id, tags = found.run_id, dict(found.tags)
    if served.precision == "int8":
        if INT8_ARTIFACT_TAG not in tags:
            raise RegistryError(
                f"{where} serves int8 but has no {INT8_ARTIFACT_TAG} tag naming the file; "
                f"re-run the export stage (`dvc repro`) or {OTHER_FIX}"
            )
        artifact = PurePosixPath(tags[INT8_ARTIFACT_TAG])
        name, card_artifact = artifact.name, str(artifact.with_suffix(".json"))
        source = {"run_id": run_id, "artifact_path": str(artifact)}
        model = _get(tracking_uri, tmp / "model", f"{where}: {artifact} of run {run_id}", source)
    else:
        name, card_artifact = MODEL_FILE, FLOAT_CARD_ARTIFACT
        uri = _model_files(tracking_uri, found.source)
        what = f"{where}: the registered model ({uri})"
        files = _get(tracking_uri, tmp / "model", what, {"artifact_uri": uri})
        onnx = sorted(files.rglob("*.onnx"))
        if not onnx:
            raise RegistryError(
                f"{where}: its file is gone (no .onnx in the registered model at {uri}); "
                f"{OTHER_FIX}"
            )
        if any(p.suffix == ".data" for p in files.rglob("*")):  # MLflow's default layout
            raise RegistryError(
                f"{where}: the registered model keeps its weights outside its .onnx file "
                "(registered before exports logged it as one file), so it cannot be checked "
                f"against its card; re-run the export stage (`dvc repro`) or {OTHER_FIX}"
            )
        model = onnx[0]
    try:
        source = {"run_id": run_id, "artifact_path": card_artifact}
        card = _get(tracking_uri, tmp / "card", f"{where}: {card_artifact}", source)
    except _Gone:
        raise RegistryError(
            f"{where} has no card ({card_artifact} in run {run_id}): it was exported before "
            f"cards were logged; re-run the export stage (`dvc repro`) or {OTHER_FIX}"
        ) from None
    return name, model, card


def _model_files(tracking_uri: str, source: str) -> str:
    """Where a registered version's model files are: an MLflow 3 version's source names a
    logged model (``models:/m-...``), looked up here, since MLflow would resolve it through
    its default registry rather than ``tracking_uri``; older sources are artifact URIs."""
    from mlflow.exceptions import MlflowException

    if not source.startswith("models:/m-"):
        return source
    try:
        return (
            _client(tracking_uri)
            .get_logged_model(source.removeprefix("models:/"))
            .artifact_location
        )
    except MlflowException as exc:
        raise _Gone(f"{source} is not in the registry ({_first_line(exc)}); {OTHER_FIX}") from None


class AliasNotSet(RegistryError):
    """The alias names no version: never set, or removed (``registry challenger --clear``,
    a promotion of the challenger, the MLflow UI)."""


class _Gone(RegistryError):
    """A file the registry names is not in its artifact store."""


def _get(tracking_uri: str, dst: Path, what: str, source: dict[str, str]) -> Path:
    """One artifact (or a registered model's folder) downloaded into ``dst``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    dst.mkdir()
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                dst_path=str(dst), tracking_uri=tracking_uri, registry_uri=tracking_uri, **source
            )
        )
    except (MlflowException, OSError) as exc:
        text = _first_line(exc)
        if "Max retries exceeded" in text or isinstance(exc, ConnectionError):
            raise _unreachable(exc, tracking_uri) from None
        raise _Gone(f"{what} is gone from the artifact store ({text}); {OTHER_FIX}") from None


def _verify(served: ServedVersion, model: Path, card_file: Path) -> ModelCard:
    """The card, once file == card == registry tag (SHA-256) and the precisions agree."""
    where = f"{served.model_name} v{served.version}"
    try:
        shutil.copyfile(card_file, card_path(model))
        card = ModelCard.read_beside(model)
    except DataFormatError as exc:
        raise RegistryError(f"{where}: its card is unusable ({exc}); {OTHER_FIX}") from None
    actual = sha256_file(model)
    if not actual == card.sha256 == served.sha256:
        raise RegistryError(
            f"{where}: hash mismatch: the downloaded {model.name} has SHA-256 {actual[:16]}, "
            f"its card says {card.sha256[:16]}, the registry's tag says {served.sha256[:16]}: "
            f"the stored artifact is not the one the gate judged; {OTHER_FIX}"
        )
    if card.precision != served.precision:
        raise RegistryError(
            f"{where}: its card says {card.precision}, the registry says it serves "
            f"{served.precision}; re-run the field stage (`dvc repro`) or {OTHER_FIX}"
        )
    return card


def _lookup_error(
    exc: Exception, tracking_uri: str, model_uri: str, name: str, alias: str | None
) -> RegistryError:
    code = getattr(exc, "error_code", "")
    if code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        return access_refused(exc, tracking_uri, f"read {name}") or _unreachable(exc, tracking_uri)
    if alias is not None:
        return AliasNotSet(
            f"{model_uri}: no version is {alias!r} in {tracking_uri} yet; {PROMOTE_FIX}"
        )
    return RegistryError(
        f"{model_uri}: not in the registry {tracking_uri} ({_first_line(exc)}); "
        f"check the name and version in the MLflow UI, or {PROMOTE_FIX}"
    )


def _unreachable(exc: Exception, tracking_uri: str) -> RegistryError:
    cause = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|timed out", str(exc))
    return RegistryError(
        f"the registry {tracking_uri} did not answer "
        f"({cause[0] if cause else _first_line(exc)}); start "
        "it or point MLFLOW_TRACKING_URI at it, or serve a file with MNIST_MODEL_PATH"
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


class _ClientEnv:
    """MLflow reads these settings from the environment at each request: set them while
    any thread here talks to the registry, and take them away after the last."""

    lock = threading.Lock()
    users = 0
    added: dict[str, str] = {}

    @classmethod
    def enter(cls) -> None:
        with cls.lock:
            if cls.users == 0:
                cls.added = {k: v for k, v in CLIENT_ENV.items() if k not in os.environ}
                os.environ.update(cls.added)
            cls.users += 1

    @classmethod
    def leave(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users == 0:
                for key in cls.added:
                    os.environ.pop(key, None)


@contextlib.contextmanager
def _fail_fast(tracking_uri: str) -> Iterator[None]:
    """Refuse a sqlite store that is not there; MLflow set as CLIENT_ENV says meanwhile."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        raise RegistryError(
            f"no registry at {tracking_uri} (the file is not there); point "
            "MLFLOW_TRACKING_URI at the registry the models were registered in, or run "
            "the pipeline here first (`dvc repro`)"
        )
    _ClientEnv.enter()
    try:
        yield
    finally:
        _ClientEnv.leave()
