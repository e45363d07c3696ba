"""Model Registry: every export is a version; the champion alias only moves up, and only to a
model at least as good on MNIST test AND every field set."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from mnist_mlops.export.to_onnx import export_onnx
from mnist_mlops.tracking.registry import (
    CHAMPION,
    promote_if_better,
    register_onnx,
    registered_version,
)
from mnist_mlops.train.network import MLP

pytestmark = pytest.mark.slow


@dataclass
class Store:
    uri: str
    client: mlflow.MlflowClient
    experiment: str
    onnx: Path

    def run(self) -> str:
        return self.client.create_run(self.experiment).info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    """One sqlite MLflow store with one experiment, and a tiny exported ONNX model: a new
    store's schema takes seconds to create, so the tests share it, each under its own
    registered model name."""
    folder = tmp_path_factory.mktemp("registry")
    export_onnx(MLP(hidden=(8,)), folder / "m.onnx")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)  # MLflow puts artifacts beside the working directory
        yield Store(uri, client, client.create_experiment("reg"), folder / "m.onnx")


@pytest.fixture
def name(request) -> str:
    """A registered model name of this test's own: its versions start at 1."""
    return f"digits-{request.node.name}"


def test_champion_moves_only_to_a_better_model(store, name):
    uri, client = store.uri, store.client
    runs = [store.run() for _ in range(3)]

    first = register_onnx(store.onnx, uri, runs[0], name, 0.98, {"git_commit": "abc"})
    worse = register_onnx(store.onnx, uri, runs[1], name, 0.97)
    better = register_onnx(store.onnx, uri, runs[2], name, 0.985)
    assert (first.version, first.promoted) == ("1", True)
    assert (worse.version, worse.promoted, worse.previous_accuracy) == ("2", False, 0.98)
    assert (better.version, better.promoted, better.previous_champion) == ("3", True, "1")
    champion = client.get_model_version_by_alias(name, CHAMPION)
    assert str(champion.version) == "3" and champion.run_id == runs[2]
    first = client.get_model_version(name, "1")
    assert first.tags == {"test_accuracy": "0.980000", "git_commit": "abc"}
    # The registered artifact is a loadable MLflow ONNX model.
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 28, 28)


def test_champion_needs_test_and_every_field_set(store, name):
    uri, client = store.uri, store.client
    versions = [
        register_onnx(
            store.onnx, uri, store.run(), name, acc,
            promote=False,
        ).version
        for acc in (0.98, 0.99, 0.985, 0.98)
    ]  # fmt: skip
    assert not any(v.aliases for v in client.search_model_versions(f"name='{name}'"))

    first = promote_if_better(uri, name, versions[0], {"test_accuracy": 0.98, "field_photo": 0.9})
    # Better on MNIST test, worse on photos: the users would lose, so no promotion.
    worse = promote_if_better(uri, name, versions[1], {"test_accuracy": 0.99, "field_photo": 0.8})
    # Better on both.
    better = promote_if_better(
        uri, name, versions[2], {"test_accuracy": 0.985, "field_photo": 275 / 300}
    )
    # Exactly as good as the champion (whose tag is rounded): "at least as good" promotes.
    tie = promote_if_better(
        uri, name, versions[3], {"test_accuracy": 0.985, "field_photo": 275 / 300}
    )

    assert first["promoted"] and first["previous"] is None
    assert not worse["promoted"] and worse["worse_on"] == ["field_photo"]
    assert better["promoted"] and better["previous"] == versions[0]
    assert tie["promoted"] and tie["previous"] == versions[2]
    champion = client.get_model_version_by_alias(name, CHAMPION)
    assert str(champion.version) == versions[3]
    assert client.get_model_version(name, versions[1]).tags["field_photo"] == "0.800000"


def test_registered_version_is_found_by_run_and_model_hash(store, name):
    run = store.run()
    version = register_onnx(store.onnx, store.uri, run, name, 0.98, {"sha256": "a" * 64}).version
    assert registered_version(store.uri, name, run, "a" * 64) == version
    assert registered_version(store.uri, name, run, "b" * 64) is None  # another model file
    assert registered_version(store.uri, name, store.run(), "a" * 64) is None  # another run
