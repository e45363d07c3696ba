"""A tracked training run carries what MLflow 3 users expect (sqlite store, in process)."""

from __future__ import annotations

import pytest

from mnist_mlops.core.config import MlflowConfig, TrainConfig
from mnist_mlops.tracking.runs import client, prepare_store
from mnist_mlops.train.training import train

pytestmark = pytest.mark.slow

EPOCHS = 3


def test_run_has_params_once_curves_datasets_and_system_metrics(
    processed_dir, tmp_path, monkeypatch, complete_run_check, repo_params
):
    # Sample often so even a few seconds of training leave system metrics behind.
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    cfg = TrainConfig.from_params(
        repo_params, hidden=(16,), max_epochs=EPOCHS, batch_size=64, accelerator="cpu", devices="1"
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    prepare_store(uri, "contents")
    result = train(
        cfg,
        processed_dir,
        tmp_path / "m.ckpt",
        MlflowConfig.from_params(repo_params, tracking_uri=uri, experiment="contents"),
    )
    complete_run_check(client(uri), result.run_id, EPOCHS, result.history)
    # Artifacts of a sqlite store live beside the database, not in the working directory.
    artifact_uri = client(uri).get_run(result.run_id).info.artifact_uri
    assert artifact_uri.startswith((tmp_path / "mlruns").as_uri()), artifact_uri
