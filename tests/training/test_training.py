"""Real training on synthetic data with a real MLflow sqlite store, then ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_mlops.core.config import MlflowConfig, TrainConfig
from mnist_mlops.data.splits import load_splits
from mnist_mlops.export.to_onnx import (
    INPUT_NAME,
    as_model_input,
    export_and_verify,
    inference_session,
)
from mnist_mlops.tracking.runs import client
from mnist_mlops.train.checkpoint import load_net
from mnist_mlops.train.trainer import HISTORY_KEYS
from mnist_mlops.train.training import train

pytestmark = pytest.mark.slow

# Small and on CPU; the rest (optimizer, schedule, seed...) is params.yaml's.
SMALL = dict(hidden=(32,), max_epochs=3, batch_size=32, lr=3e-3, accelerator="cpu", devices="1")
TINY = dict(hidden=(16,), batch_size=64, accelerator="cpu", devices="1")


def _mlflow(params, tmp, experiment):
    return MlflowConfig.from_params(
        params, tracking_uri=f"sqlite:///{tmp}/mlflow.db", experiment=experiment
    )


@pytest.fixture(scope="module")
def trained(processed_dir, tmp_path_factory, repo_params):
    tmp = tmp_path_factory.mktemp("train")
    mlflow_cfg = _mlflow(repo_params, tmp, "test")
    cfg = TrainConfig.from_params(repo_params, **SMALL)
    result = train(cfg, processed_dir, tmp / "model.ckpt", mlflow_cfg)
    return result, tmp, mlflow_cfg


def test_model_learns_and_history_is_per_epoch(trained):
    result, _, _ = trained
    assert result.epochs == 3 and result.device == "cpu"
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.best_val_acc >= 0.9
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]


def test_mlflow_run_has_params_metrics_and_tags(trained):
    result, _, mlflow_cfg = trained
    run = client(mlflow_cfg.tracking_uri).get_run(result.run_id)
    assert run.data.params["hidden"] == "(32,)"
    assert run.data.params["max_epochs"] == "3"
    assert len(run.data.tags["dataset_sha256"]) == 64
    assert "git_commit" in run.data.tags
    for key in HISTORY_KEYS:
        assert len(client(mlflow_cfg.tracking_uri).get_metric_history(result.run_id, key)) == 3


def test_checkpoint_reloads_to_the_same_predictions(trained, processed_dir):
    _, tmp, _ = trained
    splits, _ = load_splits(processed_dir)
    net = load_net(tmp / "model.ckpt")
    import torch

    with torch.no_grad():
        acc = (net(torch.from_numpy(splits.x_test)).argmax(1).numpy() == splits.y_test).mean()
    assert acc >= 0.9


def test_export_parity_and_dynamic_batch(trained, processed_dir):
    _, tmp, _ = trained
    splits, _ = load_splits(processed_dir)
    net = load_net(tmp / "model.ckpt")
    parity = export_and_verify(net, tmp / "model.onnx", splits.x_test)
    assert parity.n_images == 200 and parity.argmax_mismatches == 0 and parity.max_abs_diff <= 1e-4
    session = inference_session(tmp / "model.onnx")
    for n in (1, 7, 200):
        flat = splits.x_test[:n].reshape(n, 784)
        out = session.run(None, {INPUT_NAME: as_model_input(flat)})[0]
        assert out.shape == (n, 10)
    assert [d for d in session.get_inputs()[0].shape] == ["batch", 28, 28]


def test_same_seed_on_cpu_gives_identical_metrics(processed_dir, tmp_path, repo_params):
    cfg = TrainConfig.from_params(repo_params, max_epochs=1, deterministic=True, **TINY)
    mlflow_cfg = _mlflow(repo_params, tmp_path, "det")
    runs = [train(cfg, processed_dir, tmp_path / f"m{i}.ckpt", mlflow_cfg) for i in range(2)]
    assert runs[0].history == runs[1].history
    assert np.isfinite(runs[0].history[0]["val/loss"])


def test_untracked_training_writes_checkpoint_and_history(processed_dir, tmp_path, repo_params):
    """mlflow_cfg=None (the GPU box has no MLflow): no run, same per-epoch curve."""
    cfg = TrainConfig.from_params(repo_params, max_epochs=2, **TINY)
    untracked = train(cfg, processed_dir, tmp_path / "a.ckpt", None)
    assert untracked.run_id == "" and (tmp_path / "a.ckpt").is_file()
    assert [h["epoch"] for h in untracked.history] == [1, 2]
    assert all(np.isfinite(h[k]) for h in untracked.history for k in HISTORY_KEYS)
