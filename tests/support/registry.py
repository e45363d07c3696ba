"""Registered model versions laid out exactly as the export and field stages leave them, in a
real MLflow store, for tests of everything that resolves a model through the registry.

    onnx = tiny_export(tmp_path / "v1")  # model.onnx + model.json (+ the int8 pair)
    version = register_version(uri, "mnist-mlp", onnx, served="int8", alias="champion")

The export stage logs the int8 file and its card under ``export/int8/`` of the train run,
the float card as ``export/model.json``, and registers the float model (an MLflow ONNX
model, saved as one file so that its SHA-256 is its card's) tagged with both hashes and
the int8 file's path; the field stage tags the version with the artifact it serves and
the gate's word. A test that needs another layout (a version whose file is gone, a card
missing) changes the store afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mnist_mlops.inference.model_card import CARD_NAME, ModelCard, card_path
from support.gated import write_int8

EXPERIMENT = "registry-tests"
INT8_ARTIFACTS = "export/int8"  # the export stage's folder for the int8 pair in its run
FLOAT_CARD_FOLDER = "export"  # ... and for the float card (export/model.json)


def tiny_export(folder: Path, hidden: int = 8, seed: int = 0) -> Path:
    """A small untrained MLP exported to ``folder/model.onnx`` with its card and its int8
    artifact (``model.int8.onnx`` + card); different ``seed``s give different files."""
    import torch

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.train.network import MLP

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    onnx = folder / "model.onnx"
    export_onnx(MLP(hidden=(hidden,)), onnx)
    ModelCard.for_model(onnx, mean=0.13, std=0.31, test_accuracy=0.9).write_beside(onnx)
    write_int8(onnx)
    return onnx


def register_version(
    tracking_uri: str,
    model_name: str,
    onnx_path: Path,
    *,
    int8_path: Path | None = None,
    served: str = "float32",
    alias: str | None = None,
    gate_reason: str | None = None,
    external_data: bool = False,
) -> str:
    """Log ``onnx_path`` (+ its int8 artifact, default the one beside it) to a new run as the
    export stage does, register it, tag it as the field stage does (serving ``served``),
    and point ``alias`` at it; the new version number.

    ``gate_decision`` says promoted when ``alias`` is ``champion``, else refused.
    ``external_data``: the float model's weights in a file of their own, MLflow's default
    (how exports registered it before they saved it as one file).
    """
    import mlflow

    from mnist_mlops.tracking.runs import prepare_store

    int8_path = int8_path or write_int8(onnx_path)
    float_card, int8_card = ModelCard.read_beside(onnx_path), ModelCard.read_beside(int8_path)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run_id = client.create_run(prepare_store(tracking_uri, EXPERIMENT)).info.run_id
    client.log_artifact(run_id, str(int8_path), INT8_ARTIFACTS)
    client.log_artifact(run_id, str(card_path(int8_path)), INT8_ARTIFACTS)
    with tempfile.TemporaryDirectory(prefix="card-") as tmp:  # logged as model.json
        client.log_artifact(
            run_id, shutil.copy(card_path(onnx_path), Path(tmp) / CARD_NAME), FLOAT_CARD_FOLDER
        )
    with pytest.MonkeyPatch.context() as env:
        # MLflow 3's set_tracking_uri also sets the variable; setting it here first makes
        # the context undo it, so later tests' subprocesses do not find this store.
        env.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        info = _log_model(tracking_uri, run_id, onnx_path, model_name, external_data)
    version = str(info.registered_model_version)
    chosen = int8_card if served == "int8" else float_card
    artifact = int8_path if served == "int8" else onnx_path
    promoted = alias == "champion"
    tags = {
        "test_accuracy": f"{float_card.test_accuracy:.6f}",
        "sha256": float_card.sha256,
        "int8_sha256": int8_card.sha256,
        "int8_artifact": f"{INT8_ARTIFACTS}/{int8_path.name}",
        "served_artifact": artifact.name,
        "served_precision": chosen.precision,
        "served_sha256": chosen.sha256,
        "served_reason": f"test fixture: {served} chosen",
        "gate_decision": "promoted" if promoted else "refused",
        "gate_reason": gate_reason
        or ("no champion yet" if promoted else "worse than champion beyond noise (test fixture)"),
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if alias is not None:
        client.set_registered_model_alias(model_name, alias, version)
    return version


def _log_model(
    tracking_uri: str, run_id: str, onnx_path: Path, model_name: str, external_data: bool
) -> Any:
    """The float model logged to ``run_id`` as an MLflow ONNX model and registered."""
    import mlflow
    import onnx

    mlflow.set_tracking_uri(tracking_uri)  # the registry too (no set_registry_uri: it stays)
    with mlflow.start_run(run_id=run_id):
        return mlflow.onnx.log_model(
            onnx.load(str(onnx_path)),
            name="onnx-model",
            registered_model_name=model_name,
            save_as_external_data=external_data,  # one file: the bytes its card names
        )


def run_artifact(tracking_uri: str, model_name: str, version: str, path: str) -> Path:
    """Where a file of ``version``'s run lies in a local store (to corrupt or delete it)."""
    client = _client(tracking_uri)
    run = client.get_run(client.get_model_version(model_name, version).run_id)
    return _local(run.info.artifact_uri) / path


def registered_onnx(tracking_uri: str, model_name: str, version: str) -> Path:
    """The registered model's .onnx file in a local store (to corrupt or delete it)."""
    client = _client(tracking_uri)
    source = client.get_model_version(model_name, version).source  # models:/m-<model id>
    model_id = source.removeprefix("models:/")
    found = sorted(_local(client.get_logged_model(model_id).artifact_location).rglob("*.onnx"))
    assert found, f"no .onnx in {model_name} v{version}'s logged model"
    return found[0]


def _client(tracking_uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _local(uri: str) -> Path:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    assert uri.startswith("file:"), f"{uri}: not a local artifact store"
    return Path(url2pathname(urlparse(uri).path))
