"""Registering an export: one version per MLflow run and model file. A re-export of the
same bytes from the same run is that version again (its tags set anew, nothing logged or
registered twice); the same bytes from another run are that run's own version; another
file from the same run is a new one. A real sqlite registry, real registrations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.export.register import register_onnx
from mnist_mlops.registry.versions import registered_version
from support.registry_store import Store, make_store

pytestmark = pytest.mark.slow  # logs real MLflow models


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("register")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)  # MLflow puts a logged model's artifacts beside the working directory
        yield make_store(folder)


@pytest.fixture
def name(request) -> str:
    """A registered model name of this test's own, so its versions start at 1."""
    return f"export-{request.node.name}"[:60]


def _versions(store: Store, name: str) -> list[tuple[str, str]]:
    found = store.client.search_model_versions(f"name = '{name}'")
    return sorted((str(v.version), v.run_id) for v in found)


def _logged_models(store: Store, run: str) -> int:
    logged = store.client.search_logged_models(experiment_ids=[store.experiment])
    return sum(m.source_run_id == run for m in logged)


def test_exporting_the_same_bytes_twice_from_a_run_leaves_one_version(store, name):
    run = store.run()
    first = register_onnx(store.onnx, store.uri, run, name, 0.98, {"int8_sha256": "1" * 64})
    # The rerun's int8 copy may differ (a changed export.quantize): its tags are the rerun's.
    again = register_onnx(store.onnx, store.uri, run, name, 0.97, {"int8_sha256": "2" * 64})
    assert (first.version, first.reused, again.version, again.reused) == ("1", False, "1", True)
    assert again.line() == (
        f"reused {name} v1: this run registered the same model bytes already "
        "(tags updated, no new version)"
    )
    assert again.record() == first.record() == {"model": name, "version": "1"}
    assert _versions(store, name) == [("1", run)]
    assert _logged_models(store, run) == 1  # the ONNX model was logged to the run once
    tags = store.client.get_model_version(name, "1").tags
    assert tags["sha256"] == sha256_file(store.onnx)
    assert (tags["int8_sha256"], tags["test_accuracy"]) == ("2" * 64, "0.970000")


def test_the_same_bytes_from_another_run_are_that_runs_own_version(store, name):
    """A deterministic retrain exports the same bytes from a new run: the version must be
    that run's (its cards and int8 file are that run's artifacts, and the field stage
    finds the version it judges by run and file)."""
    runs = store.run(), store.run()
    first = register_onnx(store.onnx, store.uri, runs[0], name, 0.98)
    second = register_onnx(store.onnx, store.uri, runs[1], name, 0.98)
    assert (second.version, second.reused, second.same_bytes) == ("2", False, ("1",))
    assert second.line() == f"registered {name} v2 (the same bytes as v1, exported by another run)"
    assert first.line() == f"registered {name} v1"
    sha = sha256_file(store.onnx)
    assert [registered_version(store.uri, name, run, sha) for run in runs] == ["1", "2"]
    assert register_onnx(store.onnx, store.uri, runs[1], name, 0.98).reused
    assert _versions(store, name) == [("1", runs[0]), ("2", runs[1])]


def test_another_file_from_the_same_run_is_a_new_version(store, name, tmp_path: Path):
    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.train.network import MLP

    other = tmp_path / "other.onnx"
    export_onnx(MLP(hidden=(4,)), other)
    assert sha256_file(other) != sha256_file(store.onnx)
    run = store.run()
    versions = [register_onnx(path, store.uri, run, name, 0.9) for path in (store.onnx, other)]
    assert [(v.version, v.reused) for v in versions] == [("1", False), ("2", False)]
    assert registered_version(store.uri, name, run, sha256_file(other)) == "2"
