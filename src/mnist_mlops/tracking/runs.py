"""MLflow helpers shared by the train, evaluate and export stages.

One MLflow run spans the pipeline: ``train`` creates it and records its id in
``models/run.json``; later stages reopen that run to add their metrics and
artifacts, so the MLflow UI shows one complete record per pipeline run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mnist_mlops.core.errors import UserError, redact
from mnist_mlops.core.fileio import read_json
from mnist_mlops.core.locks import SQLITE_PREFIX, flock, sqlite_path

log = logging.getLogger(__name__)


def git_commit(cwd: str | os.PathLike[str] = ".") -> str:
    """The current git commit (with ``-dirty`` if the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


# MLflow's own variable: a team points every process at a shared server with it.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# Set by DVC for every stage; for `dvc exp run --queue` it names the main workspace,
# not the temporary copy the experiment runs in (which is deleted afterwards).
DVC_ROOT_ENV = "DVC_ROOT"


def resolve_tracking_uri(configured: str) -> str:
    """The one place that decides where runs go: ``$MLFLOW_TRACKING_URI`` wins over params.

    A relative sqlite path (the zero-setup default ``sqlite:///mlflow.db``) is made
    absolute against the DVC repository root, so queued experiments, which run in
    temporary copies of the workspace, all log to the workspace's ``mlflow.db``.

    A URI that carries a password is refused: the train stage writes the URI into
    ``models/run.json`` (a DVC output, pushed to the remote) and MLflow prints it with each
    run's link, so the password belongs in MLflow's own variables instead.
    """
    uri = os.environ.get(TRACKING_URI_ENV) or configured
    if redact(uri) != uri:
        raise UserError(
            f"the tracking URI {uri} carries a password, which would be written to "
            "models/run.json and printed with every run; drop it from the URI and set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead"
        )
    db = sqlite_path(uri)
    if db is None or db.is_absolute():
        return uri
    query = uri.partition("?")[2]
    root = Path(os.environ.get(DVC_ROOT_ENV) or ".").resolve()
    return f"{SQLITE_PREFIX}{root / db}" + (f"?{query}" if query else "")


def client(tracking_uri: str) -> Any:
    """An MlflowClient bound to ``tracking_uri`` (no global state touched)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


@contextlib.contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` beside a sqlite store (no-op for other stores)."""
    db = sqlite_path(tracking_uri)
    if db is None:
        yield
        return
    with flock(db.with_name(db.name + ".lock"), what=f"the store {db.name}"):
        yield


def prepare_store(tracking_uri: str, experiment: str) -> str:
    """Create the store's schema and ``experiment`` once, safe when processes race; return its id.

    MLflow creates (and migrates) a new sqlite schema on first use with no lock
    between processes, and Lightning's MLFlowLogger creates a missing experiment
    by get-then-create: trainings started together (parallel ``dvc exp run``
    workers) crash with "table ... already exists" (mlflow/mlflow#19943) or
    RESOURCE_ALREADY_EXISTS. Doing both under a file lock first leaves nothing
    to race on; later connections only read the schema version. A server has no
    lock file: there, a create that loses the race reads the winner's experiment.

    A new experiment in a sqlite store keeps its artifacts in ``mlruns/`` beside the
    database (MLflow's default is the working directory, which for a queued
    experiment is a temporary copy). A server (``http://``) decides for itself.
    """
    from mlflow.exceptions import MlflowException

    with _store_lock(tracking_uri):
        c = client(tracking_uri)
        found = c.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        db = sqlite_path(tracking_uri)
        location = (db.resolve().parent / "mlruns").as_uri() if db is not None else None
        try:
            return c.create_experiment(experiment, artifact_location=location)
        except MlflowException as exc:
            # A server has no lock file here: another process may have created it meanwhile.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        return c.get_experiment_by_name(experiment).experiment_id


def read_run_ref(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``run.json`` written by the train stage: run_id, experiment_id, tracking_uri."""
    try:
        ref = read_json(path)
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the train stage first") from None
    if not isinstance(ref, dict) or "run_id" not in ref or "tracking_uri" not in ref:
        raise UserError(f"{path}: not a run reference; rerun the train stage")
    return ref


def log_to_run(
    ref: dict[str, str],
    metrics: dict[str, float],
    artifacts: list[Path],
    artifact_path: str | None = None,
) -> bool:
    """Add metrics and files to the train stage's run; warn (not fail) if the run is gone.

    The DVC outputs are the record of truth; MLflow is the browsing view, so a
    deleted ``mlflow.db`` must not block the pipeline.
    """
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    c = client(ref["tracking_uri"])
    try:
        c.get_run(ref["run_id"])
    except MlflowException:
        log.warning(
            "MLflow run %s not found in %s; results not logged there (rerun train to track)",
            ref["run_id"],
            ref["tracking_uri"],
        )
        return False
    now = int(time.time() * 1000)
    c.log_batch(ref["run_id"], metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    for p in artifacts:
        c.log_artifact(ref["run_id"], str(p), artifact_path)
    return True


def run_tags(ref: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """The named tags of the referenced run (those that exist)."""
    tags = client(ref["tracking_uri"]).get_run(ref["run_id"]).data.tags
    return {k: tags[k] for k in keys if k in tags}
