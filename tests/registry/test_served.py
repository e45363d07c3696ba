"""Resolving a registry URI to the file it serves: the alias's version, its gated artifact
downloaded and hash-checked, served.json written; every failure one line with the fix."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.serving_choice import ServingChoice, resolve_artifact
from mnist_mlops.registry.served import RegistryError, ServedVersion, fetch, resolve
from support.registry import register_version, registered_onnx, run_artifact, tiny_export

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Store:
    uri: str
    first: Path  # an export (model.onnx, model.int8.onnx, their cards)
    second: Path  # another one: other weights, other hashes


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    """One sqlite registry for the module (a new schema takes seconds), each test under a
    registered model name of its own; artifacts in mlruns/ beside the database."""
    from mnist_mlops.tracking.runs import prepare_store

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder}/mlflow.db"
    prepare_store(uri, "registry-tests")
    yield Store(uri, tiny_export(folder / "v1", seed=1), tiny_export(folder / "v2", seed=2))


@pytest.fixture
def name(request) -> str:
    return f"digits-{request.node.name}"


def one_line(exc: pytest.ExceptionInfo[RegistryError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_the_champion_resolves_to_the_artifact_its_gate_chose(store, name, tmp_path):
    register_version(store.uri, name, store.first, served="int8", alias="champion")
    register_version(store.uri, name, store.second)  # refused: the alias stays on v1
    int8 = ModelCard.read_beside(store.first.with_name("model.int8.onnx"))

    served = resolve(store.uri, f"models:/{name}@champion")

    assert served == ServedVersion(
        model_name=name,
        version="1",
        alias="champion",
        uri=f"models:/{name}@champion",
        precision="int8",
        sha256=int8.sha256,
        reason="no champion yet",
    )
    path = fetch(store.uri, served, tmp_path / "champion")
    assert path == tmp_path / "champion" / "served.json"
    choice = ServingChoice.read(path)
    assert (choice.artifact, choice.precision, choice.version) == ("model.int8.onnx", "int8", "1")
    assert choice.reason == "test fixture: int8 chosen"
    # What every server does with a served.json: the artifact, hash-checked against its card.
    artifact = resolve_artifact(path)
    assert sha256_file(artifact) == int8.sha256 == ModelCard.read_beside(artifact).sha256
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "model.int8.json",
        "model.int8.onnx",
        "served.json",
    ]
    assert served.describe() == f"{name} v1 (int8, {int8.sha256[:12]}) from models:/{name}@champion"


def test_a_version_number_resolves_to_its_float_model(store, name, tmp_path):
    register_version(store.uri, name, store.first, served="int8", alias="champion")
    register_version(store.uri, name, store.second, served="float32")
    card = ModelCard.read_beside(store.second)

    served = resolve(store.uri, f"models:/{name}/2")

    assert (served.version, served.alias, served.precision) == ("2", None, "float32")
    assert served.sha256 == card.sha256
    artifact = resolve_artifact(fetch(store.uri, served, tmp_path))
    assert artifact == tmp_path / "model.onnx" and sha256_file(artifact) == card.sha256


def test_no_champion_yet_says_how_to_make_one(store, name):
    register_version(store.uri, name, store.first)  # registered, never promoted
    with pytest.raises(RegistryError) as exc:
        resolve(store.uri, f"models:/{name}@champion")
    text = one_line(exc)
    assert "no version is 'champion'" in text
    assert "dvc repro" in text and "python -m pipeline.registry promote VERSION" in text


def test_an_unknown_model_or_version_is_named(store, name):
    with pytest.raises(RegistryError, match="no version is 'champion'"):
        resolve(store.uri, f"models:/{name}@champion")  # no such registered model at all
    register_version(store.uri, name, store.first)
    with pytest.raises(RegistryError) as exc:
        resolve(store.uri, f"models:/{name}/7")
    assert f"models:/{name}/7: not in the registry" in one_line(exc)


@pytest.mark.parametrize("uri", ["mnist-mlp", "models:/mnist-mlp", "models:/a/b", "runs:/x/y"])
def test_a_uri_that_is_not_a_registry_uri_is_refused(store, uri):
    with pytest.raises(RegistryError, match="models:/NAME@ALIAS"):
        resolve(store.uri, uri)


def test_a_sqlite_registry_that_is_not_there_is_not_created(tmp_path):
    db = tmp_path / "nothing.db"
    with pytest.raises(RegistryError) as exc:
        resolve(f"sqlite:///{db}", "models:/mnist-mlp@champion")
    assert "no registry at" in one_line(exc) and "MLFLOW_TRACKING_URI" in one_line(exc)
    assert not db.exists()


def test_an_unreachable_registry_fails_in_one_line():
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RegistryError) as exc:
        resolve(f"http://127.0.0.1:{port}", "models:/mnist-mlp@champion")
    text = one_line(exc)
    assert f"the registry http://127.0.0.1:{port} did not answer" in text
    assert "MNIST_MODEL_PATH" in text


def test_a_corrupted_artifact_is_refused(store, name, tmp_path):
    register_version(store.uri, name, store.first, served="int8", alias="champion")
    stored = run_artifact(store.uri, name, "1", "export/int8/model.int8.onnx")
    stored.write_bytes(stored.read_bytes()[:-1] + b"\0")
    served = resolve(store.uri, f"models:/{name}@champion")

    with pytest.raises(RegistryError) as exc:
        fetch(store.uri, served, tmp_path / "champion")
    text = one_line(exc)
    assert f"{name} v1: hash mismatch" in text and "rollback" in text
    assert not (tmp_path / "champion").exists()  # nothing half-fetched left to serve


def test_a_float_model_whose_file_is_gone_is_refused(store, name, tmp_path):
    register_version(store.uri, name, store.first, served="float32", alias="champion")
    registered_onnx(store.uri, name, "1").unlink()
    with pytest.raises(RegistryError) as exc:
        fetch(store.uri, resolve(store.uri, f"models:/{name}@champion"), tmp_path)
    assert f"{name} v1: its file is gone (no .onnx in the registered model at " in one_line(exc)


def test_a_float_model_with_external_weights_is_refused(store, name, tmp_path):
    register_version(store.uri, name, store.first, alias="champion", external_data=True)
    with pytest.raises(RegistryError) as exc:
        fetch(store.uri, resolve(store.uri, f"models:/{name}@champion"), tmp_path)
    text = one_line(exc)
    assert "keeps its weights outside its .onnx file" in text and "re-run the export" in text


def test_an_int8_file_that_is_gone_is_refused(store, name, tmp_path):
    register_version(store.uri, name, store.first, served="int8", alias="champion")
    run_artifact(store.uri, name, "1", "export/int8/model.int8.onnx").unlink()
    with pytest.raises(RegistryError) as exc:
        fetch(store.uri, resolve(store.uri, f"models:/{name}@champion"), tmp_path)
    assert "export/int8/model.int8.onnx of run" in one_line(exc)
    assert "is gone from the artifact store" in one_line(exc)


def test_a_version_without_a_card_is_refused(store, name, tmp_path):
    register_version(store.uri, name, store.first, served="float32", alias="champion")
    run_artifact(store.uri, name, "1", "export/model.json").unlink()
    with pytest.raises(RegistryError) as exc:
        fetch(store.uri, resolve(store.uri, f"models:/{name}@champion"), tmp_path)
    text = one_line(exc)
    assert f"{name} v1 has no card (export/model.json" in text
    assert "re-run the export stage" in text


def test_a_version_without_a_hash_is_refused(store, name):
    import mlflow

    register_version(store.uri, name, store.first, served="float32", alias="champion")
    client = mlflow.MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    for tag in ("served_sha256", "sha256"):
        client.delete_model_version_tag(name, "1", tag)
    with pytest.raises(RegistryError) as exc:
        resolve(store.uri, f"models:/{name}@champion")
    assert "cannot be hash-checked" in one_line(exc)
