"""A model by registry URI: the champion alias or a version, resolved through MLflow."""

from __future__ import annotations

import pytest

from mnist_mlops.export.register import register_onnx
from mnist_mlops.gate.decide import promote_if_better
from mnist_mlops.scoring.job import score
from mnist_mlops.tracking.runs import client, prepare_store

pytestmark = pytest.mark.slow  # logs a real MLflow model


def test_the_champion_scores_like_its_file(tmp_path, monkeypatch, score_model, pixels_npy):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment = prepare_store(uri, "mnist-mlp")
    run_id = client(uri).create_run(experiment).info.run_id
    version = register_onnx(score_model, uri, run_id, "mnist-mlp", 0.9).version
    assert promote_if_better(uri, "mnist-mlp", version, {"test_accuracy": 0.9})["promoted"]

    by_alias = score("models:/mnist-mlp@champion", pixels_npy, tmp_path / "a.csv", tracking_uri=uri)
    by_version = score(
        f"models:/mnist-mlp/{version}", pixels_npy, tmp_path / "v.csv", tracking_uri=uri
    )
    by_file = score(str(score_model), pixels_npy, tmp_path / "f.csv")
    assert by_alias.model.version == by_version.model.version == version
    assert by_alias.digest == by_file.digest  # the same data, recorded the same way
    # MLflow re-saves the graph (weights as external data), so the bytes differ from the
    # file's; the predictions must not.
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "f.csv").read_bytes()
    assert (tmp_path / "v.csv").read_bytes() == (tmp_path / "f.csv").read_bytes()
