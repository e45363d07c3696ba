"""Log the ONNX model as an MLflow model and promote it in the Model Registry.

Every export registers a new version of ``registered_model``; the ``champion``
alias moves to it only when it is at least as good as the current champion on
every metric compared (the field stage passes MNIST test and each field set:
:func:`promote_if_better`), so ``models:/mnist-mlp@champion`` never moves to a
model that is worse where users are. Versions are compared on the same images: each is
tagged with a fingerprint of the sets it was scored on, and when the champion's differs
from the current one (the field sets were regenerated, corrections arrived, the
preprocessing changed) the champion is scored again on the current sets first: the
artifact it serves (its ``served_*`` tags; the int8 file its run logged when it served
int8), since that is what its numbers describe. Every judged version carries the gate's
word (``gate_decision``, ``gate_reason``), so the registry's UI shows why a version is or
is not the champion.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mnist_mlops.tracking.runs import promotion_lock

log = logging.getLogger(__name__)

CHAMPION = "champion"
SETS_TAG = "sets_sha256"  # what a version's metric tags were measured on
TAG_DIGITS = 6  # metrics are tagged on model versions with this many decimals
DECISION_TAG, REASON_TAG = "gate_decision", "gate_reason"  # the champion gate's word
PROMOTED, REFUSED = "promoted", "refused"  # what DECISION_TAG says
# Which artifact of its export a version serves (the field stage tags it): a version
# without these tags (registered before the gate chose) served its float model.
SERVED_PRECISION_TAG, SERVED_SHA_TAG = "served_precision", "served_sha256"
INT8_ARTIFACT_TAG = "int8_artifact"  # the export stage's: the int8 file, run-relative


def register_onnx(
    onnx_path: str | os.PathLike[str],
    tracking_uri: str,
    run_id: str,
    model_name: str,
    test_accuracy: float,
    tags: dict[str, str] | None = None,
) -> str:
    """Log ``onnx_path`` to ``run_id`` as an MLflow ONNX model and register it; the version.

    Registering never moves the champion alias: the field stage does, with
    :func:`promote_if_better`, once the field sets are scored.
    """
    import mlflow
    import onnx
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    # A blank canvas with a vertical stroke: a "1" in the 0..255 range the model expects
    # (normalisation is inside the graph). The run page shows it and MLflow validates
    # that the logged model accepts it.
    example = np.zeros((1, 28, 28), dtype=np.float32)
    example[0, 4:24, 12:16] = 255.0
    signature = infer_signature(example, np.zeros((1, 10), dtype=np.float32))
    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(
            onnx.load(str(onnx_path)),
            name="onnx-model",
            signature=signature,
            input_example=example,
            registered_model_name=model_name,
            await_registration_for=60,
        )
    version = str(info.registered_model_version)
    for key, value in {"test_accuracy": f"{test_accuracy:.{TAG_DIGITS}f}", **(tags or {})}.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version


def registered_version(tracking_uri: str, model_name: str, run_id: str, sha256: str) -> str | None:
    """The version of ``model_name`` that ``run_id`` registered for the model file with this
    SHA-256 (the export stage tags it), or None: the registry, not model.json, keeps it."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    versions = [v for v in found if v.tags.get("sha256") == sha256]
    return str(max(int(v.version) for v in versions)) if versions else None


def promote_if_better(
    tracking_uri: str,
    model_name: str,
    version: str,
    metrics: dict[str, float],
    sets_sha256: str | None = None,
    rescore: Callable[[Path], dict[str, float]] | None = None,
    tolerances: dict[str, float] | None = None,
) -> dict:
    """Tag ``version`` with ``metrics``; move the champion alias to it if it is at least as
    good as the champion on every one of them (a metric the champion lacks does not block),
    or worse by no more than ``tolerances[metric]`` (see :func:`noise_tolerance`: two
    trainings on slightly different data differ by a few images either way, and a strict
    gate would refuse every retrained model).

    ``sets_sha256`` names the images ``metrics`` were measured on. When the champion was
    scored on other images and ``rescore`` is given, ``rescore(champion's served file)``
    measures it again on these, and those numbers (tagged on the champion) are compared.
    The result (and the version's ``gate_decision`` and ``gate_reason`` tags, promoted or
    refused) says what was decided and why.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    _tag(client, model_name, version, metrics, sets_sha256)
    with promotion_lock(tracking_uri, model_name):  # read, compare and move as one step
        return _decide(client, model_name, version, metrics, sets_sha256, rescore, tolerances)


def _decide(
    client: Any,
    model_name: str,
    version: str,
    metrics: dict[str, float],
    sets_sha256: str | None,
    rescore: Callable[[Path], dict[str, float]] | None,
    tolerances: dict[str, float] | None,
) -> dict:
    """The gate's decision against the champion as it is now (under the promotion lock)."""
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(model_name, CHAMPION)
        previous: str | None = str(current.version)
        tags = dict(current.tags)
    except MlflowException:
        current, previous, tags = None, None, {}
    rescored = (
        previous is not None
        and previous != version
        and sets_sha256 is not None
        and rescore is not None
        and tags.get(SETS_TAG) != sets_sha256
    )
    if rescored:
        tags.update(_rescore_champion(client, model_name, current, rescore, sets_sha256))
    theirs = {k: float(v) for k, v in tags.items() if k in metrics}
    # Compared as tagged: the champion's tags are rounded, so an equal model is not "worse".
    mine = {k: round(v, TAG_DIGITS) for k, v in metrics.items()}
    floors = {
        k: round(v - (tolerances or {}).get(k, 0.0), TAG_DIGITS)
        for k, v in theirs.items()
        if not math.isnan(v)
    }
    worse = sorted(k for k, floor in floors.items() if mine[k] < floor)
    promote = previous == version or not worse
    reason = _reason(previous, version, worse, mine, theirs, floors)
    if promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        log.info("%s v%s is the %s: %s", model_name, version, CHAMPION, reason)
    else:
        log.info("%s v%s refused, alias unchanged: %s", model_name, version, reason)
    word = {DECISION_TAG: PROMOTED if promote else REFUSED, REASON_TAG: reason}
    _set_tags(client, model_name, version, word)
    return {
        "promoted": promote,
        "previous": previous,
        "previous_metrics": theirs,
        "worse_on": worse,
        "rescored_previous": rescored,
        "reason": reason,
    }


def _rescore_champion(
    client: Any,
    model_name: str,
    champion: Any,
    rescore: Callable[[Path], dict[str, float]],
    sets_sha256: str,
) -> dict[str, str]:
    """The champion's served file measured on the current sets; its new tags."""
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        remeasured = rescore(_download_served(client, model_name, champion, Path(tmp)))
    _tag(client, model_name, str(champion.version), remeasured, sets_sha256)
    log.info("%s v%s rescored on the current sets: %s", model_name, champion.version, remeasured)
    return {k: f"{v:.{TAG_DIGITS}f}" for k, v in remeasured.items()}


def _reason(
    previous: str | None,
    version: str,
    worse: list[str],
    mine: dict[str, float],
    theirs: dict[str, float],
    floors: dict[str, float],
) -> str:
    """The decision in one line for a person: which metrics lost, by how much, against what."""
    if previous is None:
        return "no champion yet"
    if previous == version:
        return "already the champion"
    if not worse:
        return (
            f"no worse than {CHAMPION} v{previous} beyond noise on "
            f"{', '.join(sorted(floors)) or 'any metric it was scored on'}"
        )
    lost = "; ".join(
        f"{k} {mine[k]:.4f} vs {theirs[k]:.4f} (lowest allowed {floors[k]:.4f})" for k in worse
    )
    return f"worse than {CHAMPION} v{previous} beyond noise on {lost}"


def tag_version(tracking_uri: str, model_name: str, version: str, tags: dict[str, str]) -> None:
    """Set ``tags`` on one registered version (the field stage's ``served_*`` record)."""
    from mlflow.tracking import MlflowClient

    _set_tags(MlflowClient(tracking_uri=tracking_uri), model_name, version, tags)


def _set_tags(client: Any, model_name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def noise_tolerance(accuracy: float, n: int, z: float) -> float:
    """How much lower a second model's accuracy on ``n`` images may be before it is worse
    rather than noise: ``z`` standard errors of the difference of two accuracies near
    ``accuracy`` (smoothed as (k + 2) / (n + 4), so 100 % on a small set still allows some).

    On the 10,000 MNIST test digits that is a fraction of a point; on a few hundred field
    images a few points; on a handful of corrections it is wide, and the other sets decide.
    """
    if n <= 0:
        return 0.0
    p = (accuracy * n + 2) / (n + 4)
    return z * math.sqrt(2 * p * (1 - p) / n)


def _tag(
    client: object, model_name: str, version: str, metrics: dict[str, float], sets: str | None
) -> None:
    for key, value in metrics.items():
        client.set_model_version_tag(model_name, version, key, f"{value:.{TAG_DIGITS}f}")  # type: ignore[attr-defined]
    if sets is not None:
        client.set_model_version_tag(model_name, version, SETS_TAG, sets)  # type: ignore[attr-defined]


def _download_served(client: Any, model_name: str, champion: Any, folder: Path) -> Path:
    """The file the champion serves, downloaded into ``folder``: the int8 file its run
    logged when its tags say it served int8 (its SHA-256 checked against the tag), else
    the registered float model."""
    import mlflow

    from mnist_mlops.core.errors import ChecksumError
    from mnist_mlops.core.fileio import sha256_file

    tags = dict(champion.tags)
    if tags.get(SERVED_PRECISION_TAG) != "int8":
        return _download_onnx(client.tracking_uri, model_name, str(champion.version), folder)
    if INT8_ARTIFACT_TAG not in tags:
        raise FileNotFoundError(
            f"{model_name} v{champion.version} served int8 but has no {INT8_ARTIFACT_TAG} tag"
        )
    path = Path(
        mlflow.artifacts.download_artifacts(
            run_id=champion.run_id,
            artifact_path=tags[INT8_ARTIFACT_TAG],
            dst_path=str(folder),
            tracking_uri=client.tracking_uri,
        )
    )
    expected = tags.get(SERVED_SHA_TAG)
    if expected and sha256_file(path) != expected:
        raise ChecksumError(
            f"{model_name} v{champion.version}: {tags[INT8_ARTIFACT_TAG]} in run "
            f"{champion.run_id} is not the file it served (SHA-256 {expected})"
        )
    return path


def _download_onnx(tracking_uri: str, model_name: str, version: str, folder: Path) -> Path:
    """The registered version's ONNX file, downloaded into ``folder``."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{model_name}/{version}",
        dst_path=str(folder),
        tracking_uri=tracking_uri,
        registry_uri=tracking_uri,
    )
    found = sorted(Path(local).rglob("*.onnx"))
    if not found:
        raise FileNotFoundError(f"{model_name} v{version}: no .onnx file in its artifacts")
    return found[0]
