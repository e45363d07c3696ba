"""Registered versions: logging an export as a version, the tags it carries, its card.

An export is registered as one version per run and model file (a re-export of the same
bytes from the same run is that version again: :mod:`mnist_mlops.export.register`);
nothing here moves an alias
(:mod:`.aliases` does, under the promotion lock). A version's tags say what it is and how it
was judged: ``sha256`` (the float file, the export's), the metrics the gate compared
(``test_accuracy``, ``field_<set>``, measured on the images ``sets_sha256`` names), the
served artifact the field stage chose (``served_*``), and the gate's word
(``gate_decision``, ``gate_reason``), so the registry's UI shows why a version is or is not
the champion. Its card (the float ``model.json``, and the int8 one when int8 serves) is an
artifact of its run: a version without one cannot be promoted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mnist_mlops.core.errors import UserError
from mnist_mlops.inference.model_card import CARD_NAME, ModelCard, card_path
from mnist_mlops.registry.connect import RegistryError

SETS_TAG = "sets_sha256"  # what a version's metric tags were measured on
TAG_DIGITS = 6  # metrics are tagged on model versions with this many decimals
SHA_TAG = "sha256"  # the float file's, tagged by the export stage
DECISION_TAG, REASON_TAG = "gate_decision", "gate_reason"  # the champion gate's word
PROMOTED, REFUSED = "promoted", "refused"  # what DECISION_TAG says
# Which artifact of its export a version serves (the field stage tags it): a version
# without these tags (registered before the gate chose) served its float model.
SERVED_PRECISION_TAG, SERVED_SHA_TAG = "served_precision", "served_sha256"
INT8_ARTIFACT_TAG = "int8_artifact"  # the export stage's: the int8 file, run-relative
EXPORT_ARTIFACTS = "export"  # the run folder the export stage logs into
CARD_ARTIFACT = f"{EXPORT_ARTIFACTS}/{CARD_NAME}"  # the float card in the run


class VersionError(RegistryError):
    """A version that is not there, or not fit to serve (no card, a hash that differs)."""


def registered_version(tracking_uri: str, model_name: str, run_id: str, sha256: str) -> str | None:
    """The version of ``model_name`` that ``run_id`` registered for the model file with this
    SHA-256 (the export stage tags it), or None: the registry, not model.json, keeps it.
    The newest, should a run hold several (exports from before a re-export reused one)."""
    from mlflow.tracking import MlflowClient

    found = versions_of_file(MlflowClient(tracking_uri=tracking_uri), model_name, sha256)
    versions = [v for v in found if v.run_id == run_id]
    return str(versions[-1].version) if versions else None


def versions_of_file(client: Any, model_name: str, sha256: str) -> list[Any]:
    """Every version of ``model_name`` whose ``sha256`` tag is this SHA-256, oldest first."""
    found = client.search_model_versions(f"name = '{model_name}' and tags.{SHA_TAG} = '{sha256}'")
    return sorted(found, key=lambda v: int(v.version))


def tag_version(tracking_uri: str, model_name: str, version: str, tags: dict[str, str]) -> None:
    """Set ``tags`` on one registered version (the field stage's ``served_*`` record)."""
    from mlflow.tracking import MlflowClient

    set_tags(MlflowClient(tracking_uri=tracking_uri), model_name, version, tags)


def set_tags(client: Any, model_name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def tag_metrics(
    client: Any, model_name: str, version: str, metrics: dict[str, float], sets: str | None
) -> None:
    """``metrics`` on ``version`` as the gate compares them, and the images they came from."""
    tags = {key: f"{value:.{TAG_DIGITS}f}" for key, value in metrics.items()}
    set_tags(client, model_name, version, tags | ({SETS_TAG: sets} if sets is not None else {}))


def metric_tags(tags: dict[str, str]) -> dict[str, float]:
    """The gate's numbers among a version's tags: ``test_accuracy`` and ``field_<set>``."""
    found = {}
    for key, value in tags.items():
        if key == "test_accuracy" or key.startswith("field_"):
            try:
                found[key] = float(value)
            except ValueError:
                continue
    return found


def served_card(client: Any, model_name: str, version: Any) -> ModelCard:
    """The card of the artifact ``version`` serves, from its run, checked against its tags:
    the float card (``export/model.json``) against ``sha256``, and when the field stage chose
    int8 the int8 card (beside the int8 file under ``export/int8/``) against ``served_sha256``.
    Raises :class:`VersionError` (one line: which version, what is missing, the fix)."""
    tags = dict(version.tags)
    name = f"{model_name} v{version.version}"
    if SHA_TAG not in tags:
        raise VersionError(f"{name} has no {SHA_TAG} tag; re-run the export stage to register it")
    float_card = _run_card(client, name, version.run_id, CARD_ARTIFACT)
    if float_card.sha256 != tags[SHA_TAG]:
        raise VersionError(
            f"{name}: its card's SHA-256 {float_card.sha256[:12]} is not its tag's "
            f"{tags[SHA_TAG][:12]}; re-run the export stage"
        )
    if tags.get(SERVED_PRECISION_TAG) != "int8":
        return float_card
    artifact = tags.get(INT8_ARTIFACT_TAG)
    if not artifact:
        raise VersionError(f"{name} serves int8 but has no {INT8_ARTIFACT_TAG} tag; re-run export")
    int8_card = _run_card(client, name, version.run_id, card_path(artifact).as_posix())
    if int8_card.sha256 != tags.get(SERVED_SHA_TAG):
        raise VersionError(
            f"{name}: its int8 card's SHA-256 {int8_card.sha256[:12]} is not the served "
            f"one {tags.get(SERVED_SHA_TAG, '(none)')[:12]}; re-run the export and field stages"
        )
    return int8_card


def _run_card(client: Any, name: str, run_id: str, artifact: str) -> ModelCard:
    """The card logged at ``artifact`` in ``run_id``, read as a card beside its model."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="card-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact, dst_path=tmp,
                tracking_uri=client.tracking_uri,
            )  # fmt: skip
        except (MlflowException, OSError):
            raise VersionError(
                f"{name} has no card ({artifact} is not in run {run_id}); re-run the export "
                "stage, which logs it, and promote the version it registers"
            ) from None
        try:  # model.json -> model.onnx, model.int8.json -> model.int8.onnx
            return ModelCard.read_beside(Path(local).with_suffix(".onnx"))
        except UserError as exc:
            raise VersionError(f"{name}: {artifact}: {exc}") from None
