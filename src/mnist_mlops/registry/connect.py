"""Reaching the registry: a client that holds the model, or one line saying why not.

Every command that reads or moves an alias starts here, so a missing sqlite file, a server
that does not answer, a model never registered and an unknown version each read the same
way wherever they happen: one line naming the problem and the fix, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.locks import sqlite_path


class RegistryError(UserError):
    """The registry cannot give what was asked: one line, what and the fix."""


def connect(tracking_uri: str, model_name: str) -> Any:
    """A client of the registry at ``tracking_uri`` that holds ``model_name``, or one line
    saying why not: a sqlite file that is not there (MLflow would create an empty one), a
    server that does not answer, a model never registered."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        raise RegistryError(
            f"no registry at {tracking_uri} ({db} not found); run the pipeline (dvc repro) "
            "or set MLFLOW_TRACKING_URI to the team's tracking server"
        )
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(
                f"{model_name} is not registered at {tracking_uri}; run the pipeline "
                "(dvc repro) to register a version first"
            ) from None
        refused = access_refused(exc, tracking_uri, f"read {model_name}")
        raise refused or RegistryError(
            f"the registry at {tracking_uri} did not answer ({first_line(exc)}); start it "
            "or set MLFLOW_TRACKING_URI to one that runs"
        ) from None
    return client


def access_refused(exc: Exception, tracking_uri: str, what: str) -> RegistryError | None:
    """One line for a server with authentication (docs/registry.md) that does not know the
    caller (401) or does not let it do ``what`` (403); None for any other failure."""
    code = getattr(exc, "error_code", "")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if code == "UNAUTHENTICATED":
        who = (
            f"user {user!r} with that password" if user else "a caller without a user and password"
        )
        return RegistryError(
            f"the registry at {tracking_uri} refused {who} (401); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user of it"
        )
    if code == "PERMISSION_DENIED":
        return RegistryError(
            f"user {user!r} may not {what} at {tracking_uri} (403); sign in as a user "
            "granted it (python -m pipeline.registry users, docs/registry.md)"
        )
    return None


@contextlib.contextmanager
def access_errors(tracking_uri: str, what: str) -> Iterator[None]:
    """Inside the block, a server's refusal (401, 403) of the caller is one line
    (:func:`access_refused`), whoever calls: the gate in ``dvc repro`` as well as the
    registry commands."""
    try:
        yield
    except Exception as exc:
        refused = access_refused(exc, tracking_uri, what)
        if refused is None:
            raise
        raise refused from None


def first_line(exc: Exception) -> str:
    """What went wrong, short: the socket's own words (``Connection refused``) when the
    message holds them, else its first line."""
    text = str(exc).strip()
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def get_version(client: Any, model_name: str, version: str) -> Any:
    """The registered version, or a one-line :class:`RegistryError` naming the known ones."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, version)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    try:
        known = sorted(
            (int(v.version) for v in client.search_model_versions(f"name = '{model_name}'")),
        )
    except MlflowException:
        known = []
    listed = ", ".join(map(str, known)) if known else "none"
    raise RegistryError(
        f"{model_name} has no version {version!r} (registered versions: {listed}); "
        "see python -m pipeline.registry history"
    )
